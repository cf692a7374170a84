"""Measured k-space in: a folder of fastMRI multi-coil brain files (the published layout, built by
tests.helpers.fastmri; no fastMRI data can be downloaded here) runs split -> shards -> train ->
Table 1 and Figure 2, read in place; QC keeps the T1 acquisitions and a patient's files share a
set."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from tests.helpers.fastmri import write_fastmri_file
from tests.helpers.workspace import TinySource, make_workspace

pytestmark = pytest.mark.workflow

#: file name -> (acquisition, seed); seeds 3 and 3: one patient's pre- and post-contrast scans
FILES = {
    "file_brain_AXT1_201_0001.h5": ("AXT1", 1),
    "file_brain_AXT1PRE_203_0003.h5": ("AXT1PRE", 3),
    "file_brain_AXT1POST_203_0003.h5": ("AXT1POST", 3),
    "file_brain_AXT1POST_207_0004.h5": ("AXT1POST", 4),
    "file_brain_AXT1_202_0005.h5": ("AXT1", 5),
    "file_brain_AXT2_200_0006.h5": ("AXT2", 6),
    "file_brain_AXFLAIR_201_0007.h5": ("AXFLAIR", 7),
}


def test_fastmri_files_run_to_table1(tmp_path: Path) -> None:
    folder = tmp_path / "fastmri brain"
    folder.mkdir()
    for name, (acquisition, seed) in FILES.items():
        write_fastmri_file(
            folder / name,
            n_slices=4,
            n_coils=4,
            shape=(64, 32),
            recon=(32, 32),
            acquisition=acquisition,
            seed=seed,
        )
    before = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    workspace = make_workspace(tmp_path / "ws", TinySource("", "", Path()))
    workspace.write_config(
        {
            "experiment": "fastmri-tiny",
            "source": {
                "url": None,
                "md5": None,
                "n_subjects": None,
                "fastmri": {"dir": str(folder)},
            },
            "split": {"n_train": 2, "n_val": 1, "seed": 0},  # 4 patients: 2 + 1 + 1
            "preprocessing": {
                "image_size": "auto",
                "downsample": 1,
                "slice_stride": 1,
                "forward_model": "multicoil",
                "coils": 4,
            },
            "mask": {"acceleration": 4, "center_size": 8},
            "training": {"epochs": 1},
        }
    )
    results = workspace.results.relative_to(workspace.root)
    workspace.snakemake(
        "--cores", "2", str(results / "table1.csv"), str(results / "figures" / "figure2.png")
    )

    subjects = pd.read_csv(workspace.results / "subjects.csv", dtype=str, keep_default_na=False)
    t1 = sorted(n[:-3] for n, (a, _) in FILES.items() if a.startswith("AXT1"))
    assert sorted(subjects["subject"]) == t1
    assert set(subjects["acquisition"]) == {"AXT1", "AXT1PRE", "AXT1POST"}
    assert set(subjects["shape"]) == {"32x32x4"}
    split = pd.read_csv(workspace.results / "split.csv", dtype=str)
    sets = dict(zip(split["subject"], split["split"]))
    assert sets["file_brain_AXT1PRE_203_0003"] == sets["file_brain_AXT1POST_203_0003"]
    people = subjects.set_index("subject")["participant"]
    assert split.groupby(split["subject"].map(people))["split"].nunique().eq(1).all()
    assert split["subject"].map(people).groupby(split["split"]).nunique().to_dict() == {
        "train": 2,
        "val": 1,
        "test": 1,
    }
    for subject in split["subject"]:
        with h5py.File(workspace.results / "shards" / f"{subject}.h5", "r") as shard:
            assert shard["coil_kspace"].shape == (4, 4, 32, 32)
            assert shard["sensitivities"].shape == (4, 4, 32, 32)
            with h5py.File(folder / f"{subject}.h5", "r") as source:
                np.testing.assert_allclose(
                    shard["target"][()] * shard.attrs["scale"],
                    source["reconstruction_rss"][()],
                    rtol=1e-5,
                    atol=1e-7,
                )
    table = pd.read_csv(workspace.results / "table1.csv")
    assert {"Net-mse", "Net-mse-dssim"} <= set(table["method"])
    ssim = table[(table["metric"] == "ssim") & (table["n_subjects"] > 0)]
    assert {"zero-filled", "Net-mse", "Net-mse-dssim"} <= set(ssim["method"])
    assert np.isfinite(ssim["mean"]).all()
    assert (workspace.results / "figures" / "figure2.png").stat().st_size > 0
    after = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert after == before, "the fastMRI folder was written to"
