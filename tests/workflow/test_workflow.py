"""The whole workflow on a tiny IXI-shaped archive served over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from ssimrecon.functional.registry import REGISTRY
from ssimrecon.kspace.fft import zero_filled_magnitude
from ssimrecon.kspace.shards import ShardReader, validate_shard
from ssimrecon.nn.bundle import load_model_bundle
from tests.helpers.reference import skimage_ssim_psnr
from tests.helpers.workspace import TINY_SHAPE, TINY_SUBJECTS, TINY_VOXEL, Workspace

pytestmark = pytest.mark.workflow

METRICS = ["ssim", "psnr", "rel_error", "mse"]


def test_split_and_subjects(completed_workspace: Workspace) -> None:
    res = completed_workspace.results
    subjects = pd.read_csv(res / "subjects.csv", dtype=str)
    assert len(subjects) == TINY_SUBJECTS
    # QC records each file's own shape; the demo archive stores each pseudo-subject with its own
    # voxel size (0.9-1.3 x nominal per axis) and orientation, so the shapes differ but the voxel
    # counts stay within (1/1.3)^3 .. (1/0.9)^3 of the nominal TINY_SHAPE
    nominal = int(np.prod(TINY_SHAPE))
    for shape, file in zip(subjects["shape"], subjects["file"]):
        dims = tuple(int(d) for d in shape.split("x"))
        assert dims == nib.load(res.parent.parent / file).shape, file
        assert 0.45 * nominal <= np.prod(dims) <= 1.38 * nominal, shape
    assert len(set(subjects["shape"])) > 1
    split = pd.read_csv(res / "split.csv", dtype=str)
    assert split["split"].value_counts().to_dict() == {"train": 4, "val": 2, "test": 2}
    assert set(split["subject"]) <= set(subjects["subject"])


def test_every_shard_is_complete_and_consistent(completed_workspace: Workspace) -> None:
    res = completed_workspace.results
    config = completed_workspace.config
    split = pd.read_csv(res / "split.csv", dtype=str)
    shards = sorted((res / "shards").glob("*.h5"))
    assert [p.stem for p in shards] == sorted(split["subject"])
    mask = np.load(res / "masks" / f"R{config['mask']['acceleration']:g}.npz")["mask"]
    for path in shards:
        validate_shard(path)
        assert mask.shape == tuple(config["preprocessing"]["image_size"])
        assert abs(mask.size / mask.sum() - config["mask"]["acceleration"]) < 0.1
        with ShardReader(path, mask) as shard:
            assert shard.attrs["subject"] == path.stem
            kspace = shard.read_kspace()
            assert np.all(kspace[:, ~mask] == 0) and np.any(kspace[:, mask] != 0)
        with h5py.File(path) as handle:
            assert handle["target"].chunks == (1, *mask.shape) and "kspace" not in handle


#: Table 1 files -> the split they are computed on
TABLES = {"table1": "test", "table1-validation": "val"}


def _recomputed_table(
    res: Path, split: str, methods: list[str], threshold: float
) -> dict[tuple, float]:
    """(method, convention, region, slices, metric, statistic) -> value, from the per-slice and
    per-volume CSVs of one split."""
    expected = {}
    for method in methods:
        frame = pd.read_csv(res / "metrics" / split / f"{method}.csv")
        assert (frame["passes_filter"] == (frame["slice_signal"] >= threshold)).all()
        for region in ("frame", "head"):
            for which in ("filtered", "all"):
                chosen = frame[frame["region"] == region]
                if which == "filtered":
                    chosen = chosen[chosen["passes_filter"]]
                for m in REGISTRY:
                    values = chosen[["subject", m]].dropna()
                    key = (method, "paper", region, which, m)
                    expected[(*key, "mean")] = values[m].mean()
                    expected[(*key, "subject_mean")] = values.groupby("subject")[m].mean().mean()
                    expected[(*key, "n_slices")] = len(values)
        volumes = pd.read_csv(res / "metrics" / split / f"{method}.volumes.csv")
        for m in ("ssim", "psnr", "nmse", "mse"):
            expected[(method, "fastmri", "frame", "all", m, "mean")] = volumes[m].mean()
    return expected


def test_table1_matches_the_per_slice_metrics(completed_workspace: Workspace) -> None:
    """table1.* (test split) and table1-validation.* (val split) hold the statistics of their
    split's per-slice and per-volume CSVs, and the Markdown/HTML state the split and the rules."""
    res = completed_workspace.results
    methods = ["zero-filled", *completed_workspace.config["networks"]]
    threshold = completed_workspace.config["evaluation"]["min_signal_fraction"]
    for name, split in TABLES.items():
        table = pd.read_csv(res / f"{name}.csv")
        assert list(dict.fromkeys(table["method"])) == methods
        assert set(table["split"]) == {split}
        expected = _recomputed_table(res, split, methods, threshold)
        got = table.set_index(["method", "convention", "region", "slices", "metric"])
        for (*key, stat), value in expected.items():
            if key[-1] == "vif":  # 16x32 frames are below VIF's 41 pixels: NaN, stated
                row = got.loc[tuple(key)]
                assert row["n_slices"] == 0 and math.isnan(row["mean"]), (name, key)
                assert "not scored on any slice" in row["note"]
                continue
            assert math.isfinite(got.loc[tuple(key), stat]), (name, key, stat)
            assert got.loc[tuple(key), stat] == pytest.approx(value, rel=1e-9, abs=1e-12), (
                name,
                key,
                stat,
            )
        # the new judges have rows; the statistics plan: one confirmatory endpoint per network
        assert {"haarpsi", "gmsd", "ms_ssim", "hfen", "vif"} <= set(table["metric"])
        dssim = table[table["method"] == "Net-mse-dssim"]
        confirmatory = dssim[dssim["role"] == "confirmatory"]
        assert confirmatory[["region", "slices", "metric"]].values.tolist() == [
            ["head", "filtered", "ssim"]
        ]
        scored = dssim[dssim["metric"] != "vif"]
        assert (scored["diff_low"] <= scored["diff_high"]).all()
        md = (res / f"{name}.md").read_text()
        assert md.count("Net-mse") >= 2 and f"split '{split}'" in md
        assert "## Primary endpoint (confirmatory): SSIM, head mask" in md and "p_Holm" in md
        assert f"evaluation.min_signal_fraction = {threshold:g}" in md and "Head mask" in md
        page = (res / f"{name}.html").read_text()
        assert page.startswith("<!DOCTYPE html>") and "paired Wilcoxon" in page
    assert "(validation split)" in (res / "table1-validation.md").read_text()


def test_networks_beat_zero_filled_and_artifacts_exist(
    completed_workspace: Workspace, tmp_path: Path
) -> None:
    """Trained for TRAINED_EPOCHS on the tiny data, every network's mean SSIM and mean PSNR over the
    validation slices beat zero-filled's by SSIM_MARGIN / PSNR_MARGIN_DB (per-slice metrics
    recomputed here with scikit-image from the shards and each best.pt, and the evaluation stage's
    CSV agrees).

    The shared tiny run trains 2 epochs, too few to undo the untrained residual U-Net's offset (its
    networks score about 0.35 SSIM / 11.8 dB against zero-filled's 0.70 / 22.4 dB), so this test
    retrains a clone of it for longer.

    Mutation tried (fails this test): ``run.optimizer.step()`` removed from the training loop."""
    ws = completed_workspace.clone(tmp_path / "ws")
    ws.write_config({"training": TRAINED})
    ws.snakemake("--cores", "2")
    res = ws.results
    for name in [
        "figures/figure2.png",
        "figures/figure2.pdf",
        "figures/training_curves.png",
        "figures/mask_R4.png",
        "table1.md",
        "table1.html",
        "table1-validation.md",
        "table1-validation.html",
    ]:
        assert (res / name).stat().st_size > 1000, name
    networks = list(ws.config["networks"])
    for network in networks:
        history = pd.read_csv(res / "models" / network / "history.csv")
        assert list(history["epoch"]) == list(range(1, TRAINED["epochs"] + 1))
        assert (res / "state" / network / "last.pt").exists()
    threshold = ws.config["evaluation"]["min_signal_fraction"]
    scores = _independent_scores(res, networks, threshold)
    zero_ssim, zero_psnr = scores["zero-filled"]
    for network in networks:
        ssim, psnr = scores[network]
        assert ssim > zero_ssim + SSIM_MARGIN, (network, scores)
        assert psnr > zero_psnr + PSNR_MARGIN_DB, (network, scores)
        # the evaluation stage's per-slice CSV (validation split, whole frame, filtered) agrees
        frame = pd.read_csv(res / "metrics" / "val" / f"{network}.csv")
        frame = frame[(frame["region"] == "frame") & frame["passes_filter"]]
        assert frame["ssim"].mean() == pytest.approx(ssim, abs=1e-3), network
        assert frame["psnr"].mean() == pytest.approx(psnr, abs=0.05), network


#: Training long enough for the tiny networks to beat zero-filled (about 20 s per network).
TRAINED = {"epochs": 30, "lr": 3.0e-3}
#: Smallest improvement over zero-filled accepted; after TRAINED the networks gain 0.04-0.10 SSIM
#: and about 1.8 dB.
SSIM_MARGIN = 0.01
PSNR_MARGIN_DB = 0.5


def _validation_slices(res: Path, threshold: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(undersampled k-space (H, W), target (H, W), data_range) of every validation slice with
    slice_signal >= threshold."""
    split = pd.read_csv(res / "split.csv", dtype=str)
    (mask_file,) = (res / "masks").glob("R*.npz")  # the one acceleration of the tiny run
    mask = np.load(mask_file)["mask"]
    out = []
    for subject in sorted(split.loc[split["split"] == "val", "subject"]):
        with h5py.File(res / "shards" / f"{subject}.h5") as shard:
            keep = np.flatnonzero(shard["slice_signal"][()] >= threshold)
            data_range = float(shard.attrs["data_range"])
            for i in keep:
                target = shard["target"][i]
                # the acquisition the definitions state: centred orthonormal FFT, then the mask
                full = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(target), norm="ortho"))
                out.append((full * mask, target, data_range))
    assert out, "no validation slice above the signal threshold"
    return out


def _input_scales(res: Path, threshold: float) -> np.ndarray:
    """(S,) the network's input scale of each slice of :func:`_validation_slices` (same order): the
    definitions' rule recomputed here, the ``scale_percentile``-th percentile of the voxels > 0 of
    the zero-filled magnitude of every slice of the slice's volume."""
    split = pd.read_csv(res / "split.csv", dtype=str)
    (mask_file,) = (res / "masks").glob("R*.npz")
    mask = np.load(mask_file)["mask"]
    scales = []
    for subject in sorted(split.loc[split["split"] == "val", "subject"]):
        with h5py.File(res / "shards" / f"{subject}.h5") as shard:
            percentile = json.loads(shard.attrs["preprocessing"])["scale_percentile"]
            targets = shard["target"][()]
            keep = np.flatnonzero(shard["slice_signal"][()] >= threshold)
        full = np.fft.fftshift(
            np.fft.fft2(np.fft.ifftshift(targets, axes=(1, 2)), norm="ortho"), axes=(1, 2)
        )
        zf = np.abs(
            np.fft.fftshift(
                np.fft.ifft2(np.fft.ifftshift(full * mask, axes=(1, 2)), norm="ortho"), axes=(1, 2)
            )
        )
        scales += [float(np.percentile(zf[zf > 0], percentile))] * len(keep)
    return np.asarray(scales)


def _network_outputs(model_path: Path, zero_filled: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """best.pt (loaded weights_only by the project's loader) applied to zero-filled images (S, H, W)
    as the definitions state: ``model(zero_filled / s) * s`` with the slices' input scales
    ``scales`` (S,) -> (S, H, W)."""
    model, _ = load_model_bundle(model_path)
    s = scales.astype(np.float32)[:, None, None, None]
    with torch.no_grad():
        x = torch.from_numpy(zero_filled.astype(np.float32)[:, None] / s)
        return (model(x).numpy() * s)[:, 0]


def _independent_scores(
    res: Path, networks: list[str], threshold: float
) -> dict[str, tuple[float, float]]:
    """Method -> (mean SSIM, mean PSNR) over the validation slices, recomputed from the shards."""
    slices = _validation_slices(res, threshold)
    zero_filled = zero_filled_magnitude(np.stack([k for k, _, _ in slices]))
    scales = _input_scales(res, threshold)
    estimates = {"zero-filled": zero_filled}
    for network in networks:
        model_path = res / "models" / network / "best.pt"
        estimates[network] = _network_outputs(model_path, zero_filled, scales)
    scores = {}
    for method, images in estimates.items():
        pairs = [skimage_ssim_psnr(t, e, r) for (_, t, r), e in zip(slices, images)]
        scores[method] = (
            float(np.mean([p[0] for p in pairs])),
            float(np.mean([p[1] for p in pairs])),
        )
    return scores


def test_model_bundles_record_and_were_trained_with_the_configured_loss(
    completed_workspace: Workspace,
) -> None:
    """Each network's best.pt (project loader, weights_only) records its config loss weights, and
    the validation loss it stores is that weighted loss of the bundle's own weights: ``mean MSE +
    w_dssim * (1 - mean SSIM)`` recomputed here over the validation slices. So the dSSIM weight of
    Net-mse-dssim reached training, and Net-mse trained without one.

    Mutation tried (fails this test): ``loss_fn = build_loss({"mse": 1.0})`` in ``Trainer`` (the
    config weights recorded, not used)."""
    res = completed_workspace.results
    config = completed_workspace.config
    slices = _validation_slices(res, config["training"]["min_signal_fraction"])
    targets = np.stack([t for _, t, _ in slices]).astype(np.float64)
    zero_filled = zero_filled_magnitude(np.stack([k for k, _, _ in slices]))
    scales = _input_scales(res, config["training"]["min_signal_fraction"])
    weights_seen = {}
    for network, spec in config["networks"].items():
        weights = {term: float(w) for term, w in spec["loss"].items()}
        assert set(weights) <= {"mse", "dssim"}, "recomputation below covers mse and dssim only"
        _, bundle = load_model_bundle(res / "models" / network / "best.pt")
        assert bundle["extra"]["network"] == network
        assert bundle["extra"]["loss_terms"] == weights, network
        outputs = _network_outputs(
            res / "models" / network / "best.pt", zero_filled, scales
        ).astype(np.float64)
        # the loss is on the network's normalised axis (intensities / input scale); SSIM is not
        # changed by a common scale of both images and data_range
        mse = float(np.mean(((outputs - targets) / scales[:, None, None]) ** 2))
        ssim = float(
            np.mean([skimage_ssim_psnr(t, o, r)[0] for (_, t, r), o in zip(slices, outputs)])
        )
        expected = weights.get("mse", 0.0) * mse + weights.get("dssim", 0.0) * (1.0 - ssim)
        # 3 %: validation runs in bf16 autocast where the CPU supports it; the dSSIM term alone is
        # many times larger than that on the tiny run.
        assert bundle["extra"]["val_loss"] == pytest.approx(expected, rel=0.03), (
            network,
            bundle["extra"]["val_loss"],
            mse,
            ssim,
        )
        # adding or dropping a 0.1 dSSIM term moves the loss by over three times that tolerance
        assert 0.1 * (1.0 - ssim) > 0.1 * expected, (network, mse, ssim)
        weights_seen[network] = weights.get("dssim", 0.0)
    assert sorted(weights_seen.values()) == [0.0, 0.1]


def test_report_builds(completed_workspace: Workspace, tmp_path: Path) -> None:
    """The report holds Table 1 as a rendered HTML page (both splits); its landing page links the
    table and shows Figure 2 and the mask figure. Mutation tried: Snakemake's own embeddedimage
    directive leaves a file path, no embedded PNG."""
    ws = completed_workspace.clone(tmp_path / "ws")
    report = ws.results / "report.html"
    ws.snakemake("--cores", "1", "--report", str(report.relative_to(ws.root)))
    text = report.read_text(errors="replace")
    assert report.stat().st_size > 10_000
    for caption in ["Table 1", "Figure 2", "mask", "Training"]:
        assert caption in text
    pages = {
        match.group(1): base64.b64decode(match.group(2)).decode()
        for match in re.finditer(
            r"data:text/html;charset=utf8;filename=([\w.-]+);base64,([A-Za-z0-9+/=]+)", text
        )
    }
    assert pages["table1.html"] == (ws.results / "table1.html").read_text()
    assert "<h1>Table 1: reconstruction quality on the test subjects</h1>" in pages["table1.html"]
    assert "Table 1 (validation split)" in pages["table1-validation.html"]
    landing = text[text.index("ssimrecon reproduces") : text.index('<script id="results">')]
    res = f"results/{ws.config['experiment']}"
    for target in [
        "table1.html",
        "table1-validation.html",
        "figures/figure2.png",
        "figures/mask_R4.png",
    ]:
        assert f"app.showResultInfo('{res}/{target}')" in landing, target
    # Figure 2 and the mask figure are shown on the landing page itself (embedded PNGs)
    shown = re.findall(r'src=\\?"data:image/png;[^,"\\]*base64,([A-Za-z0-9+/=]+)', landing)
    for figure in ("figure2.png", "mask_R4.png"):
        assert base64.b64encode((ws.results / "figures" / figure).read_bytes()).decode() in shown


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
    # the trained bundle records its grid in mm; every slice along the readout is reconstructed
    assert metrics["training_grid_recorded"] and metrics["slices_scored"] > 0
    assert metrics["slices_total"] == nib.as_closest_canonical(source).shape[2]  # readout: S
