"""The whole workflow on a tiny IXI-shaped archive served over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ssimrecon.kspace.shards import ShardReader, validate_shard
from tests.helpers import TINY_SHAPE, TINY_VOXEL, Workspace

pytestmark = pytest.mark.workflow

METRICS = ["ssim", "psnr", "rel_error", "mse"]


def test_split_and_subjects(completed_workspace: Workspace) -> None:
    res = completed_workspace.results
    subjects = pd.read_csv(res / "subjects.csv", dtype=str)
    assert len(subjects) == 6
    assert set(subjects["shape"]) == {"x".join(map(str, TINY_SHAPE))}
    split = pd.read_csv(res / "split.csv", dtype=str)
    assert (split["split"] == "train").sum() == 4 and (split["split"] == "val").sum() == 2
    assert set(split["subject"]) <= set(subjects["subject"])


def test_every_shard_is_complete_and_consistent(completed_workspace: Workspace) -> None:
    res = completed_workspace.results
    config = completed_workspace.config
    split = pd.read_csv(res / "split.csv", dtype=str)
    shards = sorted((res / "shards").glob("*.h5"))
    assert [p.stem for p in shards] == sorted(split["subject"])
    mask = np.load(res / "mask.npz")["mask"]
    for path in shards:
        validate_shard(path)
        with ShardReader(path) as shard:
            assert shard.attrs["subject"] == path.stem
            assert tuple(shard.mask.shape) == tuple(config["preprocessing"]["image_size"])
            np.testing.assert_array_equal(shard.mask, mask)
            kspace = shard.read_kspace()
            assert np.all(kspace[:, ~shard.mask] == 0)
            assert abs(shard.attrs["acceleration"] - mask.size / mask.sum()) < 1e-6
        with h5py.File(path) as handle:
            assert handle["kspace"].chunks == (1, *mask.shape)


def _recomputed_table(res: Path, methods: list[str]) -> dict[str, dict[str, float]]:
    table = {}
    for method in methods:
        frame = pd.read_csv(res / "metrics" / f"{method}.csv")
        per_subject = frame.groupby("subject")[METRICS].mean()
        table[method] = {f"{m}_mean": frame[m].mean() for m in METRICS}
        table[method].update({f"{m}_subject_mean": per_subject[m].mean() for m in METRICS})
    return table


def test_table1_matches_the_per_slice_metrics(completed_workspace: Workspace) -> None:
    res = completed_workspace.results
    methods = ["zero-filled", *completed_workspace.config["networks"]]
    table = pd.read_csv(res / "table1.csv")
    assert list(table["method"]) == methods
    expected = _recomputed_table(res, methods)
    for _, row in table.iterrows():
        for key, value in expected[row["method"]].items():
            assert math.isfinite(row[key])
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (row["method"], key)
    assert (res / "table1.md").read_text().count("Net-mse") >= 2


def test_networks_beat_zero_filled_and_artifacts_exist(completed_workspace: Workspace) -> None:
    res = completed_workspace.results
    for name in [
        "figures/figure2.png",
        "figures/figure2.pdf",
        "figures/training_curves.png",
        "figures/mask.png",
        "table1.md",
    ]:
        assert (res / name).stat().st_size > 1000, name
    for network in completed_workspace.config["networks"]:
        history = pd.read_csv(res / "models" / network / "history.csv")
        assert len(history) == completed_workspace.config["training"]["epochs"]
        assert (res / "models" / network / "best.pt").exists()
        assert (res / "state" / network / "last.pt").exists()


def test_report_builds(completed_workspace: Workspace, tmp_path: Path) -> None:
    ws = completed_workspace.clone(tmp_path / "ws")
    report = ws.results / "report.html"
    ws.snakemake("--cores", "1", "--report", str(report.relative_to(ws.root)))
    text = report.read_text(errors="replace")
    assert report.stat().st_size > 10_000
    for caption in ["Table 1", "Figure 2", "mask", "Training"]:
        assert caption in text


def test_reconstruct_an_unseen_volume(completed_workspace: Workspace, tmp_path: Path) -> None:
    import tarfile

    from ssimrecon.cli import main
    from ssimrecon.data.demo import build_demo_archive

    archive = tmp_path / "unseen.tar"
    build_demo_archive(archive, n_subjects=2, seed=99, shape=TINY_SHAPE, voxel=TINY_VOXEL)
    with tarfile.open(archive) as tar:
        member = tar.getmembers()[0]
        tar.extract(member, tmp_path, filter="data")
    volume = tmp_path / member.name
    output = tmp_path / "recon.nii.gz"
    model = completed_workspace.results / "models" / "Net-mse-dssim" / "best.pt"
    assert (
        main(
            ["reconstruct", "--model", str(model), "--input", str(volume), "--output", str(output)]
        )
        == 0
    )
    source = nib.load(volume)
    for path in [output, tmp_path / "recon.zero_filled.nii.gz"]:
        image = nib.load(path)
        np.testing.assert_allclose(image.affine, source.affine)
        assert image.shape == source.shape
    metrics = json.loads((tmp_path / "recon.metrics.json").read_text())
    for method in ["zero_filled", "network"]:
        assert all(math.isfinite(metrics[method][m]) for m in METRICS)
