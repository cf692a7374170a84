"""Bring your own data: a tiny BIDS dataset."""

from __future__ import annotations

import gzip
from pathlib import Path

from tests.helpers.volumes import IXI_ZOOMS, nifti_bytes, tiny_volume, write_nifti

#: T1w volumes of the tiny BIDS dataset (path under its root) -> the subject id derived from it:
#: no session, two sessions, two runs of one session, an acquisition entity, an uncompressed .nii
TINY_BIDS_T1W = {
    "sub-01/anat/sub-01_T1w.nii.gz": "sub-01",
    "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz": "sub-02_ses-1",
    "sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz": "sub-02_ses-2",
    "sub-03/ses-1/anat/sub-03_ses-1_run-1_T1w.nii.gz": "sub-03_ses-1_run-1",
    "sub-03/ses-1/anat/sub-03_ses-1_run-2_T1w.nii.gz": "sub-03_ses-1_run-2",
    "sub-04/anat/sub-04_acq-mprage_T1w.nii": "sub-04_acq-mprage",
    "sub-05/anat/sub-05_T1w.nii.gz": "sub-05",
    "sub-06/ses-pre/anat/sub-06_ses-pre_T1w.nii.gz": "sub-06_ses-pre",
}
#: files of the dataset that are not sub-*/[ses-*/]anat/*_T1w volumes: never read (the 4D bold
#: and the non-NIfTI sidecar would fail QC if they were)
TINY_BIDS_IGNORED = (
    "sub-01/anat/sub-01_T2w.nii.gz",
    "sub-01/anat/sub-01_T1w.json",
    "sub-01/func/sub-01_task-rest_bold.nii.gz",
    "derivatives/skullstrip/sub-01/anat/sub-01_desc-brain_T1w.nii.gz",
    "sourcedata/sub-01/anat/sub-01_T1w.nii.gz",
)
#: participants.tsv sites (sub-04 says n/a, the others have no row): the rest are "unknown"
TINY_BIDS_SITES = {"sub-01": "SiteA", "sub-02": "SiteB", "sub-03": "SiteA"}


def write_tiny_bids(
    root: Path | str,
    shape: tuple[int, int, int] = (16, 16, 8),
    zooms: tuple[float, float, float] = IXI_ZOOMS,
) -> Path:
    """A BIDS dataset at ``root``: the ``TINY_BIDS_T1W`` volumes (``tiny_volume(shape, seed=i)``),
    the ``TINY_BIDS_IGNORED`` files, dataset_description.json and participants.tsv."""
    root = Path(root)
    for index, name in enumerate(TINY_BIDS_T1W):
        content = nifti_bytes(tiny_volume(shape, seed=index), zooms)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.decompress(content) if name.endswith(".nii") else content)
    for name in TINY_BIDS_IGNORED:
        if name.endswith(".json"):
            (root / name).write_text('{"RepetitionTime": 2.3}')
        else:
            write_nifti(root / name, tiny_volume((*shape, 2) if "bold" in name else shape), zooms)
    (root / "dataset_description.json").write_text('{"Name": "tiny", "BIDSVersion": "1.9.0"}')
    rows = [f"{p}\t{s}" for p, s in TINY_BIDS_SITES.items()] + ["sub-04\tn/a"]
    (root / "participants.tsv").write_text("participant_id\tsite\n" + "\n".join(rows) + "\n")
    return root
