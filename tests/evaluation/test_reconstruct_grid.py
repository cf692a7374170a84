"""reconstruct on volumes unlike the training data: other voxel sizes, orientations, dtypes, an
oblique affine, every slice; bad volumes refused naming the file."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.reconstruct import reconstruct
from ssimrecon.kspace.shards import grid_record
from tests.helpers.models import make_test_model
from tests.helpers.shards import preprocessing, sample_mask
from tests.helpers.volumes import smooth_head

FULL = np.ones((32, 32), dtype=bool)
RAS_SHAPE = (48, 56, 10)  # R, A, S at 1 mm in-plane: 24 x 28 pixels at 2 mm fit a 32 x 32 frame
SMALL = (24, 28, 10)  # the same at 2 mm


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def _outputs(out: Path) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Image, dict]:
    zero_filled = nib.load(str(out.with_name(out.name.replace(".nii.gz", ".zero_filled.nii.gz"))))
    metrics = json.loads(out.with_name(out.name.replace(".nii.gz", ".metrics.json")).read_text())
    return nib.load(str(out)).get_fdata(), zero_filled.get_fdata(), zero_filled, metrics


def _close(written: np.ndarray, volume: np.ndarray) -> float:
    """Relative L2 distance of a written volume from the input volume."""
    return float(np.linalg.norm(written - volume) / np.linalg.norm(volume))


def test_input_is_resampled_to_the_training_grid_in_mm_and_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 1 mm volume and a 2 mm network: the zero-filled output of a fully sampled mask is the
    input seen through a 2 mm grid, on the input's own grid. An older bundle without a grid keeps
    the input's 1 mm (times downsample 1), so the head needs a larger frame than 32 x 32."""
    volume = smooth_head(RAS_SHAPE)
    source = _save(tmp_path / "v.nii.gz", volume, np.diag([1.0, 1.0, 3.0, 1.0]))
    make_test_model(tmp_path / "net.pt", FULL, grid=grid_record(2, (2.0, 2.0), 3.0))
    reconstruct(tmp_path / "net.pt", source, tmp_path / "r.nii.gz", device="cpu")
    network, zero_filled, image, metrics = _outputs(tmp_path / "r.nii.gz")
    assert image.shape == RAS_SHAPE and np.allclose(image.affine, np.diag([1.0, 1.0, 3.0, 1.0]))
    assert metrics["training_pixel_mm"] == [2.0, 2.0] and metrics["frame"] == [32, 32]
    assert metrics["training_grid_recorded"] and metrics["acceleration"] == 1.0
    assert 0.005 < _close(zero_filled, volume) < 0.08  # blurred by 2 mm, but the same head
    assert network.shape == RAS_SHAPE and np.isfinite(network).all()
    # every metric finite but VIF, null on the 32x32 frame (below its 41 pixels)
    for m in ("network", "zero_filled"):
        assert metrics[m]["vif"] is None
        assert all(math.isfinite(v) for k, v in metrics[m].items() if k != "vif")

    make_test_model(tmp_path / "old.pt", sample_mask())  # an older bundle: no grid recorded
    with caplog.at_level(logging.WARNING):
        reconstruct(tmp_path / "old.pt", source, tmp_path / "o.nii.gz", device="cpu")
    assert "old.pt records no training grid" in caplog.text
    metrics = _outputs(tmp_path / "o.nii.gz")[3]
    assert metrics["training_pixel_mm"] == [1.0, 1.0] and not metrics["training_grid_recorded"]
    # the 1 mm head (about 41 x 45 pixels) does not fit 32 x 32: the frame grows (multiples of 4)
    assert metrics["frame"][0] > 32 and metrics["frame"][1] > 32
    assert all(f % 4 == 0 for f in metrics["frame"])
    assert metrics["acceleration"] == pytest.approx(4.0, rel=0.1)


def test_every_slice_with_signal_is_reconstructed_despite_a_training_slice_stride(
    tmp_path: Path,
) -> None:
    volume = smooth_head(SMALL)
    volume[:, :, -2:] = 0  # two empty slices along the readout (S) axis
    source = _save(tmp_path / "v.nii.gz", volume, np.diag([2.0, 2.0, 2.0, 1.0]))
    prep = preprocessing(readout_axis=2, image_size=(32, 32), slice_stride=3)
    make_test_model(tmp_path / "net.pt", sample_mask(), prep=prep, grid=grid_record(2, (2, 2), 2))
    result = reconstruct(tmp_path / "net.pt", source, tmp_path / "r.nii.gz", device="cpu")
    network, zero_filled, _, metrics = _outputs(tmp_path / "r.nii.gz")
    assert metrics == json.loads(json.dumps(result))
    assert (metrics["slices_total"], metrics["slices_reconstructed"]) == (10, 8)
    assert 0 < metrics["slices_scored"] <= 8
    for k in range(8):  # every slice with signal holds the network's output
        assert np.abs(network[..., k]).max() > 0 and np.abs(zero_filled[..., k]).max() > 0
    np.testing.assert_array_equal(network[..., 8:], 0)


@pytest.mark.parametrize("kind", ["uint8", "int16", "float_negative"])
def test_any_intensity_type_comes_back_in_its_own_units(tmp_path: Path, kind: str) -> None:
    """uint8 and int16 as stored; a z-scored float volume keeps its negative background (the
    background level is subtracted before scaling and added back)."""
    head = smooth_head(SMALL)
    volume = {
        "uint8": np.round(head * 200 / head.max()).astype(np.uint8),
        "int16": np.round(head * 7).astype(np.int16),
        "float_negative": ((head - head.mean()) / head.std()).astype(np.float32),
    }[kind]
    source = _save(tmp_path / "v.nii.gz", volume, np.diag([2.0, 2.0, 2.0, 1.0]))
    make_test_model(tmp_path / "net.pt", FULL, grid=grid_record(2, (2.0, 2.0), 2.0))
    reconstruct(tmp_path / "net.pt", source, tmp_path / "r.nii.gz", device="cpu")
    _, zero_filled, image, metrics = _outputs(tmp_path / "r.nii.gz")
    assert image.get_data_dtype() == np.float32
    expected = volume.astype(np.float64)
    offset = metrics["intensity_offset"]
    if kind == "float_negative":
        assert offset == pytest.approx(np.percentile(expected, 1), rel=1e-5) and offset < 0
        expected = np.maximum(expected, offset)  # below the background level: clipped
    else:
        assert offset == 0
    np.testing.assert_allclose(zero_filled, expected, atol=1e-4 * np.ptp(expected))
    assert metrics["zero_filled"]["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["zero_filled"]["rel_error"] < 1e-5
    assert metrics["zero_filled"]["psnr"] > 80 or metrics["zero_filled"]["psnr"] is None


def test_oblique_and_reoriented_inputs_overlay_themselves(tmp_path: Path) -> None:
    """An LSA volume with an oblique affine: outputs carry its affine, voxel for voxel."""
    volume = smooth_head((24, 20, 28))  # L, S, A
    affine = np.zeros((4, 4))
    affine[0, 0], affine[2, 1], affine[1, 2], affine[3, 3] = -2.0, 2.0, 2.0, 1.0
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    tilt = np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]])
    affine = tilt @ affine
    assert nib.aff2axcodes(affine) == ("L", "S", "A")
    source = _save(tmp_path / "v.nii.gz", volume, affine)
    make_test_model(tmp_path / "net.pt", FULL, grid=grid_record(2, (2.0, 2.0), 2.0))
    reconstruct(tmp_path / "net.pt", source, tmp_path / "r.nii.gz", device="cpu")
    _, zero_filled, image, metrics = _outputs(tmp_path / "r.nii.gz")
    np.testing.assert_allclose(image.affine, affine)
    np.testing.assert_allclose(zero_filled, volume, atol=1e-3)
    assert metrics["input_orientation"] == "LSA" and metrics["input_voxel_mm"] == [2.0, 2.0, 2.0]


def _bad_volumes() -> dict[str, tuple[np.ndarray, str]]:
    head = smooth_head((16, 16, 8))
    nan = head.copy()
    nan[3, 3, 3] = np.nan
    return {
        "flat2d": (head[:, :, 0], "must be 3D"),
        "series4d": (np.stack([head, head], axis=-1), "must be 3D"),
        "empty": (np.zeros((16, 16, 0), np.float32), "is empty"),
        "zeros": (np.zeros((16, 16, 8), np.float32), "has no signal"),
        "constant": (np.full((16, 16, 8), 7, np.int16), "has no signal"),
        "nan": (nan, "NaN"),
    }


@pytest.mark.parametrize("name", list(_bad_volumes()))
def test_a_bad_volume_is_refused_in_one_line_naming_the_file(tmp_path: Path, name: str) -> None:
    data, reason = _bad_volumes()[name]
    source = _save(tmp_path / f"{name}.nii.gz", data, np.eye(4))
    make_test_model(tmp_path / "net.pt", FULL, grid=grid_record(2, (1.0, 1.0), 1.0))
    before = source.read_bytes()
    with pytest.raises(SsimreconError, match=rf"{name}\.nii\.gz.*{reason}") as info:
        reconstruct(tmp_path / "net.pt", source, tmp_path / "out" / "r.nii.gz", device="cpu")
    assert "\n" not in str(info.value)
    assert source.read_bytes() == before
    assert list((tmp_path / "out").iterdir()) == []
