"""evaluate.py / inference.py on synthetic shards; also home of the shard/model builders that
test_table, test_figure2 and test_reconstruct import."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ssimrecon.cli.evaluate import evaluate as evaluate_command
from ssimrecon.device import pick_device
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.evaluate import evaluate_shards
from ssimrecon.evaluation.inference import predict_slices
from ssimrecon.functional.regions import head_mask
from ssimrecon.functional.registry import REGISTRY
from ssimrecon.kspace.fft import fft2c
from ssimrecon.nn.unet import UNet
from tests.helpers.models import make_test_model
from tests.helpers.reference import skimage_ssim_map
from tests.helpers.shards import (
    SIZE,
    ellipse_slices,
    make_test_shard,
    preprocessing,
    sample_mask,
    write_mask_file,
)


def _zero_filled_numpy(kspace: np.ndarray) -> np.ndarray:
    """Independent centred inverse FFT magnitude."""
    img = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    return np.abs(img)


def _reference_metrics(ref: np.ndarray, est: np.ndarray, data_range: float) -> pd.DataFrame:
    rows = []
    for r, e in zip(ref.astype(np.float64), est.astype(np.float64)):
        mse = np.mean((r - e) ** 2)
        rows.append(
            {
                "ssim": structural_similarity(
                    r,
                    e,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    data_range=data_range,
                ),
                "psnr": 10 * np.log10(data_range**2 / mse),
                "rel_error": np.linalg.norm(r - e) / np.linalg.norm(r),
                "mse": mse,
            }
        )
    return pd.DataFrame(rows)


class _Scale(torch.nn.Module):
    """y = w * x with w = 1: reproduces its input."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x


def test_predict_slices_feeds_zero_filled_magnitude_in_batches() -> None:
    mask = sample_mask()
    target = ellipse_slices(5)
    kspace = (fft2c(target) * mask).astype(np.complex64)
    model = _Scale().train()
    out = predict_slices(model, kspace, batch_size=2, device=pick_device("cpu"), input_scale=2.5)
    assert out.shape == (5, SIZE, SIZE) and out.dtype == np.float32
    np.testing.assert_allclose(out, _zero_filled_numpy(kspace), atol=1e-5)
    assert model.training  # mode restored
    unet = UNet(base_channels=4, depth=2, convs_per_stage=1)
    whole = predict_slices(unet, kspace, batch_size=8, input_scale=0.7)
    pieces = predict_slices(unet, kspace, batch_size=1, input_scale=0.7)
    np.testing.assert_allclose(whole, pieces, atol=1e-5)
    # the network sees zero_filled / input_scale and its output is scaled back
    with torch.no_grad():
        direct = unet(torch.from_numpy(_zero_filled_numpy(kspace))[:, None] / 0.7)[:, 0] * 0.7
    np.testing.assert_allclose(whole, direct.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(SsimreconError, match="input scale"):
        predict_slices(unet, kspace, input_scale=0.0)


def test_pick_device_names_the_setting_and_limits_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` takes CUDA, else MPS where the caller accepts it, else the CPU; errors name the
    setting. Availability is patched so every branch runs on any machine.

    Mutation tried (fails this test): ``(types is None or "mps" in types)`` dropped from the MPS
    branch of ``pick_device`` (training would then be handed an MPS device)."""
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(SsimreconError, match=r"^--device: 'gpu0' is not a device"):
        pick_device("gpu0")
    with pytest.raises(
        SsimreconError, match=r"^training\.device: only cpu and cuda are supported, got 'meta'"
    ):
        pick_device("meta", key="training.device", types=("cpu", "cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")
    assert pick_device("auto", types=("cpu", "cuda")) == torch.device("cpu")
    with pytest.raises(
        SsimreconError, match=r"^--device: 'cuda:0' requested but CUDA is not available"
    ):
        pick_device("cuda:0")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto", types=("cpu", "cuda")) == torch.device("cuda")
    assert pick_device("auto") == torch.device("cuda")


def _region_reference(
    ref: np.ndarray, est: np.ndarray, data_range: float, region: np.ndarray
) -> pd.DataFrame:
    """Region metrics per slice from scikit-image's full SSIM map and numpy; NaN when the region has
    no pixel."""
    rows = []
    for r, e, m in zip(ref.astype(np.float64), est.astype(np.float64), region):
        if not m.any():
            rows.append(dict.fromkeys(("ssim", "psnr", "rel_error", "mse"), np.nan))
            continue
        full, inner = skimage_ssim_map(r, e, data_range)
        mse = np.mean((r[m] - e[m]) ** 2)
        rows.append(
            {
                "ssim": full[m & inner].mean(),
                "psnr": 10 * np.log10(data_range**2 / mse),
                "rel_error": np.linalg.norm(r[m] - e[m]) / np.linalg.norm(r[m]),
                "mse": mse,
            }
        )
    return pd.DataFrame(rows)


def _mask(tmp_path: Path) -> Path:
    """The mask file of make_test_shard's default mask (the evaluation's undersampling)."""
    return write_mask_file(tmp_path / "mask.npz", sample_mask())


def test_zero_filled_metrics_match_independent_recomputation(tmp_path: Path) -> None:
    """Every slice is scored in both regions, the filter is recorded, and the per-volume fastMRI row
    equals scikit-image's default SSIM / PSNR with data_range = the volume maximum."""
    a = make_test_shard(tmp_path / "A.h5", "A", seed=1, empty=(0,), slice_index=np.arange(10, 16))
    b = make_test_shard(tmp_path / "B.h5", "B", seed=2, empty=(5,))
    threshold = 0.05
    result = evaluate_shards(
        [tmp_path / "A.h5", tmp_path / "B.h5"],
        method="zero-filled",
        mask_path=_mask(tmp_path),
        model_path=None,
        min_signal_fraction=threshold,
    )
    df = result.slices
    assert list(df.columns) == [
        "subject",
        "slice",
        "slice_signal",
        "passes_filter",
        "region",
        "pixels",
        "ssim",
        "psnr",
        "rel_error",
        "mse",
        "haarpsi",
        "vif",
        "gmsd",
        "ms_ssim",
        "hfen",
    ]
    for subject, data in (("A", a), ("B", b)):
        keep = data["slice_signal"] >= threshold
        assert not keep.all()  # the empty slice fails the filter but is still listed
        est = _zero_filled_numpy(data["kspace"])
        ref = data["target"]
        full = np.ones(ref.shape, dtype=bool)
        for region, mask in (("frame", full), ("head", head_mask(ref, data["data_range"]))):
            rows = df[(df["subject"] == subject) & (df["region"] == region)]
            assert rows["slice"].tolist() == data["slice_index"].tolist()
            assert rows["passes_filter"].tolist() == keep.tolist()
            assert rows["pixels"].tolist() == mask.sum(axis=(1, 2)).tolist()
            expected = _region_reference(ref[keep], est[keep], data["data_range"], mask[keep])
            for col in ("ssim", "psnr", "rel_error", "mse"):
                np.testing.assert_allclose(
                    rows[col].to_numpy()[keep], expected[col], rtol=1e-4, atol=1e-6, err_msg=col
                )
            # the empty slice has an all-zero reference: unscored in both regions
            assert rows[~keep][list(REGISTRY)].isna().all().all()
            # the perceptual and edge metrics are the registry's (tested against piq there), on
            # the region; VIF needs 41 pixels: NaN on these small slices, a row all the same
            region_mask = None if region == "frame" else mask
            for col in ("haarpsi", "vif", "gmsd", "ms_ssim", "hfen"):
                want = REGISTRY[col].compute(ref, est, data["data_range"], region_mask)
                np.testing.assert_allclose(
                    rows[col].to_numpy(), want, rtol=1e-6, equal_nan=True, err_msg=col
                )
            assert rows["vif"].isna().all() and rows["haarpsi"].to_numpy()[keep].min() > 0
        frame = df[(df["subject"] == subject) & (df["region"] == "frame") & df["passes_filter"]]
        whole = _reference_metrics(ref[keep], est[keep], data["data_range"])
        np.testing.assert_allclose(frame["ssim"], whole["ssim"], rtol=1e-4)
        volume = result.volumes.set_index("subject").loc[subject]
        maxval = float(ref.max())
        ssim = np.mean(
            [
                structural_similarity(g.astype(np.float64), p, data_range=maxval)
                for g, p in zip(ref, est)
            ]
        )
        assert volume["slices"] == len(ref) and volume["data_range"] == pytest.approx(maxval)
        assert volume["ssim"] == pytest.approx(ssim, abs=1e-6)
        psnr = peak_signal_noise_ratio(ref.astype(np.float64), est, data_range=maxval)
        assert volume["psnr"] == pytest.approx(psnr, rel=1e-5)
    head = df[(df["region"] == "head") & df["passes_filter"]]
    frame = df[(df["region"] == "frame") & df["passes_filter"]]
    assert (head["pixels"].to_numpy() < frame["pixels"].to_numpy()).all()
    assert not np.allclose(head["ssim"], frame["ssim"])  # the background changes SSIM


def test_network_metrics_and_cli(tmp_path: Path) -> None:
    data = make_test_shard(tmp_path / "A.h5", "A", seed=3)
    model = make_test_model(tmp_path / "net.pt", data["mask"])
    df = evaluate_shards(
        [tmp_path / "A.h5"],
        method="net",
        mask_path=_mask(tmp_path),
        model_path=tmp_path / "net.pt",
        min_signal_fraction=0.05,
    ).slices
    frame = df[(df["region"] == "frame") & df["passes_filter"]]
    keep = data["slice_signal"] >= 0.05
    # the network's input scale: the 99.5th percentile of the voxels > 0 of the whole volume's
    # zero-filled magnitude (no reference statistic); model(zero_filled / s) * s
    volume_zero_filled = _zero_filled_numpy(data["kspace"])
    s = float(np.percentile(volume_zero_filled[volume_zero_filled > 0], 99.5))
    with torch.no_grad():
        x = torch.from_numpy((volume_zero_filled[keep] / s).astype(np.float32))[:, None]
        est = model(x)[:, 0].numpy() * np.float32(s)
    expected = _reference_metrics(data["target"][keep], est, data["data_range"])
    np.testing.assert_allclose(frame["ssim"], expected["ssim"], rtol=1e-4)
    np.testing.assert_allclose(frame["mse"], expected["mse"], rtol=1e-4)

    out = tmp_path / "metrics" / "zero-filled.csv"
    volumes = tmp_path / "metrics" / "zero-filled.volumes.csv"
    assert (
        evaluate_command(
            [
                "--method",
                "zero-filled",
                "--shards",
                str(tmp_path / "A.h5"),
                "--mask",
                str(_mask(tmp_path)),
                "--zero-filled",
                "--output",
                str(out),
                "--volumes",
                str(volumes),
                "--config-json",
                '{"min_signal_fraction": 0.05}',
            ]
        )
        == 0
    )
    written = pd.read_csv(out, dtype={"subject": str})
    zf = evaluate_shards(
        [tmp_path / "A.h5"],
        method="zero-filled",
        mask_path=_mask(tmp_path),
        model_path=None,
        min_signal_fraction=0.05,
    )
    np.testing.assert_allclose(written["ssim"], zf.slices["ssim"], rtol=1e-9)
    assert written["region"].tolist() == zf.slices["region"].tolist()
    written_volumes = pd.read_csv(volumes, dtype={"subject": str})
    np.testing.assert_allclose(written_volumes["nmse"], zf.volumes["nmse"], rtol=1e-9)
    assert not np.allclose(written["ssim"], df["ssim"], equal_nan=True)  # the network changes them
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "zero-filled.csv",
        "zero-filled.volumes.csv",
    ]  # no temp files left


def test_model_for_other_mask_or_size_is_refused(tmp_path: Path) -> None:
    make_test_shard(tmp_path / "A.h5", "A")
    make_test_model(tmp_path / "other_mask.pt", sample_mask(seed=7))
    with pytest.raises(SsimreconError, match=r"other_mask\.pt.*A\.h5|A\.h5.*other_mask\.pt"):
        evaluate_shards(
            [tmp_path / "A.h5"],
            method="net",
            mask_path=_mask(tmp_path),
            model_path=tmp_path / "other_mask.pt",
            min_signal_fraction=0.0,
        )
    make_test_model(
        tmp_path / "other_size.pt",
        sample_mask(size=16),
        prep=preprocessing(readout_axis=2, image_size=(16, 16)),
    )
    with pytest.raises(SsimreconError, match=r"other_size\.pt.*A\.h5"):
        evaluate_shards(
            [tmp_path / "A.h5"],
            method="net",
            mask_path=_mask(tmp_path),
            model_path=tmp_path / "other_size.pt",
            min_signal_fraction=0.0,
        )
    make_test_model(
        tmp_path / "other_prep.pt",
        sample_mask(),
        prep=preprocessing(readout_axis=2, image_size=(SIZE, SIZE), downsample=2),
    )
    with pytest.raises(SsimreconError, match=r"downsample"):
        evaluate_shards(
            [tmp_path / "A.h5"],
            method="net",
            mask_path=_mask(tmp_path),
            model_path=tmp_path / "other_prep.pt",
            min_signal_fraction=0.0,
        )
    with pytest.raises(SsimreconError, match="missing.pt"):
        evaluate_shards(
            [tmp_path / "A.h5"],
            method="net",
            mask_path=_mask(tmp_path),
            model_path=tmp_path / "missing.pt",
            min_signal_fraction=0.0,
        )
    with pytest.raises(SsimreconError, match="slice_signal >= 2"):
        evaluate_shards(
            [tmp_path / "A.h5"],
            method="zero-filled",
            mask_path=_mask(tmp_path),
            model_path=None,
            min_signal_fraction=2.0,
        )


def test_the_method_is_named_by_the_caller_not_by_the_model_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A model in models/elsewhere/ evaluated as Net-A is logged as Net-A."""
    data = make_test_shard(tmp_path / "A.h5", "A", seed=3)
    (tmp_path / "elsewhere").mkdir()
    make_test_model(tmp_path / "elsewhere" / "best.pt", data["mask"])
    caplog.set_level(logging.INFO, logger="ssimrecon.progress")
    evaluate_shards(
        [tmp_path / "A.h5"],
        method="Net-A",
        mask_path=_mask(tmp_path),
        model_path=tmp_path / "elsewhere" / "best.pt",
        min_signal_fraction=0.05,
    )
    assert any(m.startswith("evaluate Net-A: ") for m in caplog.messages), caplog.messages
    assert not any("elsewhere" in m for m in caplog.messages)
