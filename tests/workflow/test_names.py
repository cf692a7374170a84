"""Any file name that QC accepts keeps the DAG whole (it used to stop on the subject wildcard)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pandas as pd

from tests.helpers.plans import planned_jobs
from tests.helpers.volumes import nifti_bytes, tiny_volume
from tests.helpers.workspace import TINY_SHAPE, TINY_SUBJECTS, TINY_VOXEL, Workspace

#: BIDS-style and other non-IXI names, with the subject ids QC derives from them
NAMES = {
    "sub-01_T1w.nii.gz": "sub-01_T1w",
    "sub-02_ses-1_T1w.nii.gz": "sub-02_ses-1_T1w",
    "sub-03_ses-2_run-1_T1w.nii.gz": "sub-03_ses-2_run-1_T1w",
    "anat/patient 4 (T1).nii.gz": "patient-4-T1",
    "Scan.5.T1.nii.gz": "Scan-5-T1",
    "sub-06_T1w.nii": "sub-06_T1w",
    "sub-07_T1w.nii.gz": "sub-07_T1w",
    "sub-08_T1w.nii.gz": "sub-08_T1w",
}


def _archive(path: Path) -> str:
    """A tar of tiny head volumes under NAMES (a .nii one uncompressed); returns its MD5."""
    import gzip

    with tarfile.open(path, "w") as tar:
        for index, name in enumerate(NAMES):
            data = nifti_bytes(tiny_volume(TINY_SHAPE, seed=index), TINY_VOXEL)
            if name.endswith(".nii"):
                data = gzip.decompress(data)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_bids_and_other_names_keep_the_dag_whole(workspace: Workspace, tmp_path: Path) -> None:
    """Mutation tried: the old wildcard constraint ``subject=[A-Za-z0-9]+`` stops the plan with
    a MissingInputException once split.csv lists these subjects."""
    assert len(NAMES) == TINY_SUBJECTS
    archive = tmp_path / "bids.tar"
    md5 = _archive(archive)
    workspace.write_config({"source": {"url": str(archive), "md5": md5}})
    workspace.snakemake(
        "--cores", "2", str(workspace.results.relative_to(workspace.root) / "split.csv")
    )
    subjects = pd.read_csv(workspace.results / "subjects.csv", dtype=str)
    assert sorted(subjects["subject"]) == sorted(NAMES.values())
    assert set(subjects["file"].map(lambda f: f.split("nifti/", 1)[1])) == set(NAMES)
    plan = workspace.snakemake("--dry-run", "--cores", "1")
    out = workspace.results.relative_to(workspace.root)
    assert planned_jobs(workspace)["shard"] == len(NAMES)
    for subject in NAMES.values():
        assert f"output: {out}/shards/{subject}.h5" in (plan.stdout + plan.stderr), subject
