"""Bring your own data: a BIDS-named dataset (sessions, runs, other modalities beside) runs
through the workflow to Table 1, read in place and never written to."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tests.helpers.bids import TINY_BIDS_SITES, TINY_BIDS_T1W, write_tiny_bids
from tests.helpers.plans import planned_jobs
from tests.helpers.volumes import nifti_bytes, tiny_volume, write_nifti
from tests.helpers.workspace import TINY_SHAPE, TINY_SUBJECTS, TINY_VOXEL, Workspace

pytestmark = pytest.mark.workflow


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root``: relative path -> (MD5, mtime in ns)."""
    return {
        str(p.relative_to(root)): (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_bids_dataset_runs_to_table1_read_in_place(workspace: Workspace, tmp_path: Path) -> None:
    """Mutation tried: without the manifest's params fingerprint, adding sub-07 plans nothing."""
    assert len(TINY_BIDS_T1W) == TINY_SUBJECTS
    dataset = write_tiny_bids(tmp_path / "my study", shape=TINY_SHAPE, zooms=TINY_VOXEL)
    before = _snapshot(dataset)
    workspace.write_config(
        {
            "experiment": "bids-tiny",
            "source": {"url": None, "md5": None, "n_subjects": None, "bids": str(dataset)},
            # 8 volumes of 6 participants: the split counts participants
            "split": {"n_train": 3, "n_val": 1},
            "preprocessing": {"image_size": "auto"},  # config.bids-example.yaml's
        }
    )
    table1 = str(workspace.results.relative_to(workspace.root) / "table1.csv")
    workspace.snakemake("--cores", "2", table1)

    subjects = pd.read_csv(workspace.results / "subjects.csv", dtype=str, keep_default_na=False)
    assert dict(zip(subjects["source_name"], subjects["subject"])) == TINY_BIDS_T1W
    assert (subjects["file"] == [str(dataset / n) for n in subjects["source_name"]]).all()
    sites = subjects["subject"].str.split("_").str[0].map(TINY_BIDS_SITES).fillna("unknown")
    assert subjects["site"].tolist() == sites.tolist()
    table = pd.read_csv(workspace.results / "table1.csv")
    split = pd.read_csv(workspace.results / "split.csv", dtype=str)
    assert set(split["subject"]) == set(TINY_BIDS_T1W.values())
    person = split["subject"].str.split("_").str[0]  # sub-02_ses-1 -> sub-02
    assert person.groupby(split["split"]).nunique().to_dict() == {"train": 3, "val": 1, "test": 2}
    assert (split.groupby(person)["split"].nunique() == 1).all()
    n_test = int((split["split"] == "test").sum())
    scored = table[table["n_subjects"] > 0]  # a metric below its smallest image side scores none
    assert set(scored["n_subjects"]) == {n_test} and set(table["split"]) == {"test"}
    assert set(table.loc[table["n_subjects"] == 0, "metric"]) <= {"vif", "ms_ssim", "haarpsi"}
    shards = sorted(p.stem for p in (workspace.results / "shards").glob("*.h5"))
    assert shards == sorted(TINY_BIDS_T1W.values())
    # image_size auto: the largest RAS in-plane slice / downsample, up to a multiple of 2**depth
    recorded = json.loads((workspace.results / "image_size.json").read_text())
    ras = [nib.as_closest_canonical(nib.load(str(dataset / n))).shape for n in TINY_BIDS_T1W]
    largest = [max(s[a] for s in ras) // 2 for a in (0, 1)]  # downsample 2, readout S-I
    assert recorded["largest_slice"] == largest and recorded["multiple"] == 4
    assert recorded["image_size"] == [4 * -(-side // 4) for side in largest]
    with h5py.File(workspace.results / "shards" / f"{shards[0]}.h5", "r") as handle:
        assert list(handle["target"].shape[1:]) == recorded["image_size"]
    mask = np.load(workspace.results / "masks" / "R4.npz")
    assert list(mask["mask"].shape) == recorded["image_size"]
    assert _snapshot(dataset) == before, "the dataset was written to"
    assert not (workspace.results / "nifti").exists(), "the dataset was copied"

    assert planned_jobs(workspace, table1) == {}
    write_nifti(dataset / "sub-01/anat/sub-01_FLAIR.nii.gz", tiny_volume(TINY_SHAPE, seed=20))
    assert planned_jobs(workspace, table1) == {}, "a file that is not a T1w volume reran jobs"
    write_nifti(dataset / "sub-07/anat/sub-07_T1w.nii.gz", tiny_volume(TINY_SHAPE, seed=21))
    jobs = planned_jobs(workspace, table1)
    assert {"source_manifest", "qc", "split"} <= set(jobs)
    # image_size auto: the new QC table re-derives the size, and the one mask follows it
    assert jobs["image_size"] == 1 and jobs["mask"] == 1


def test_a_local_tar_is_extracted_not_downloaded(workspace: Workspace, tmp_path: Path) -> None:
    """``source.tar``: the archive is read where it is (never copied to raw/ or changed), its
    members of any name are extracted safely and QC records their original paths."""
    names = [f"scans/patient {i} (T1).nii.gz" for i in range(TINY_SUBJECTS - 1)] + ["x/IXI.nii"]
    archive = tmp_path / "data" / "mine.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for index, name in enumerate(names):
            data = nifti_bytes(tiny_volume(TINY_SHAPE, seed=index), TINY_VOXEL)
            data = gzip.decompress(data) if name.endswith(".nii") else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    before = _snapshot(archive.parent)
    workspace.write_config({"source": {"url": None, "md5": None, "tar": str(archive)}})
    jobs = planned_jobs(workspace)
    assert jobs["extract"] == 1 and "download" not in jobs and "source_manifest" not in jobs
    workspace.snakemake(
        "--cores", "1", str(workspace.results.relative_to(workspace.root) / "split.csv")
    )
    subjects = pd.read_csv(workspace.results / "subjects.csv", dtype=str)
    assert sorted(subjects["source_name"]) == sorted(names)
    assert "patient-3-T1" in set(subjects["subject"]) and not (workspace.results / "raw").exists()
    assert _snapshot(archive.parent) == before


def test_a_folder_is_listed_not_copied(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    for index in range(TINY_SUBJECTS):
        write_nifti(
            folder / f"site {index % 2}/scan #{index}.nii.gz", tiny_volume(TINY_SHAPE, index)
        )
    workspace.write_config({"source": {"url": None, "md5": None, "folder": str(folder)}})
    jobs = planned_jobs(workspace)
    assert jobs["source_manifest"] == 1 and jobs["qc"] == 1
    assert not {"download", "extract", "demo_archive"} & set(jobs)
