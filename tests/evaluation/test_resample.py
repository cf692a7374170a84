"""resample.py: grids in mm, the frame of the network, the training grid a bundle records."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ssimrecon.errors import CheckpointError
from ssimrecon.evaluation.resample import (
    background_offset,
    cut_frame,
    frame_window,
    from_training_grid,
    paste_frame,
    resample,
    resampled_affine,
    scaled_mask,
    to_training_grid,
    training_grid,
)
from ssimrecon.kspace.shards import grid_record
from tests.helpers.shards import PREP, sample_mask
from tests.helpers.volumes import smooth_head


def test_resampled_values_lie_where_the_resampled_affine_puts_them() -> None:
    """A volume whose value is the world x coordinate keeps that property after resampling from
    1 x 1.5 x 2 mm to 2 x 2 x 2 mm (away from the borders, where the anti-aliasing clamps)."""
    affine = np.diag([1.0, 1.5, 2.0, 1.0])
    affine[:3, 3] = [-10.0, 4.0, 7.0]
    shape = (40, 30, 12)
    world_x = nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T)[:, 0]
    volume = world_x.reshape(shape).astype(np.float32)
    out = resample(volume, (1.0, 1.5, 2.0), (2.0, 2.0, 2.0))
    assert out.shape == (20, 22, 12)
    out_affine = resampled_affine(affine, shape, (1.0, 1.5, 2.0), (2.0, 2.0, 2.0))
    np.testing.assert_allclose(nib.affines.voxel_sizes(out_affine), (2.0, 2.0, 2.0))
    expected = nib.affines.apply_affine(out_affine, np.indices(out.shape).reshape(3, -1).T)[:, 0]
    np.testing.assert_allclose(out[3:-3], expected.reshape(out.shape)[3:-3], atol=1e-3)
    # same centre of the field of view
    centre = nib.affines.apply_affine(affine, (np.array(shape) - 1) / 2)
    np.testing.assert_allclose(
        nib.affines.apply_affine(out_affine, (np.array(out.shape) - 1) / 2), centre, atol=1e-9
    )


def test_training_grid_round_trip() -> None:
    slices = np.moveaxis(smooth_head((48, 40, 6)), 2, 0)  # (S, h, w) at 1 x 1.5 mm
    same = to_training_grid(slices, (1.0, 1.5), (1.0, 1.5))
    np.testing.assert_array_equal(same, slices)
    assert not np.shares_memory(same, slices)
    coarse = to_training_grid(slices, (1.0, 1.5), (2.0, 2.0))
    assert coarse.shape == (6, 24, 30)
    back = from_training_grid(coarse, (48, 40), (1.0, 1.5), (2.0, 2.0))
    assert back.shape == slices.shape
    error = np.abs(back - slices)[:, 4:-4, 4:-4]  # borders: the anti-aliasing clamps
    assert float(np.median(error)) < 0.02 * float(slices.max())
    assert float(np.mean(error)) < 0.05 * float(slices.max())


def test_frame_centres_on_the_signal_and_grows_only_when_it_must() -> None:
    signal = np.zeros((40, 50), dtype=bool)
    signal[25:35, 30:42] = True  # off-centre, 10 x 12
    frame, start = frame_window(signal, (16, 16), 4)
    assert frame == (16, 16) and start == (22, 28)
    slices = np.arange(2 * 40 * 50, dtype=np.float32).reshape(2, 40, 50) * signal
    framed = cut_frame(slices, frame, start)
    np.testing.assert_array_equal(paste_frame(framed, (40, 50), start), slices)
    wide = np.zeros((40, 50), dtype=bool)
    wide[2:38, 20:30] = True  # 36 rows > 16: the whole 40 rows (a multiple of 4)
    assert frame_window(wide, (16, 16), 4) == ((40, 16), (0, 17))
    assert frame_window(wide, (16, 16), 16) == ((48, 16), (-4, 17))
    small = np.zeros((6, 7), dtype=bool)
    small[2:4, 2:4] = True  # a slice smaller than the frame: centred, zero around it
    frame, start = frame_window(small, (8, 8), 4)
    assert (frame, start) == ((8, 8), (-1, 0))
    ones = np.ones((1, 6, 7), dtype=np.float32)
    assert cut_frame(ones, frame, start).sum() == 42
    np.testing.assert_array_equal(paste_frame(cut_frame(ones, frame, start), (6, 7), start), ones)


def test_scaled_mask_keeps_density_and_the_centre() -> None:
    mask = sample_mask(size=32)
    np.testing.assert_array_equal(scaled_mask(mask, (32, 32)), mask)
    big = scaled_mask(mask, (48, 64))
    assert big.shape == (48, 64) and big[24, 32]
    assert big.mean() == pytest.approx(mask.mean(), rel=0.1)
    np.testing.assert_array_equal(big[24 - 4 : 24 + 4, 32 - 6 : 32 + 6], True)  # centre block


def test_background_offset() -> None:
    head = smooth_head((16, 16, 8))
    assert background_offset(head.astype(np.uint8)) == 0.0
    z = (head - head.mean()) / head.std()
    assert background_offset(z) == pytest.approx(np.percentile(z, 1)) and background_offset(z) < 0
    noisy = head.copy()
    noisy[0, 0, :3] = -5  # a few negative voxels in a positive volume: no offset
    assert background_offset(noisy) == 0.0


def test_training_grid_recorded_inferred_or_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prep = PREP.to_dict() | {"downsample": 2}
    bundle = {"preprocessing": prep, "grid": grid_record(2, (1.2, 0.9), 1.5)}
    grid = training_grid(bundle, (1.0, 1.0, 1.0), tmp_path / "m.pt")
    assert (grid.readout_axis, grid.pixel_spacing_mm, grid.slice_thickness_mm) == (
        2,
        (1.2, 0.9),
        1.5,
    )
    assert grid.recorded
    with caplog.at_level(logging.WARNING):
        old = training_grid({"preprocessing": prep}, (0.5, 0.75, 3.0), tmp_path / "old.pt")
    assert old.pixel_spacing_mm == (1.0, 1.5) and not old.recorded
    assert "old.pt records no training grid" in caplog.text
    bad = {"preprocessing": prep, "grid": grid_record(2, (1.2, 0.0), None)}
    with pytest.raises(CheckpointError, match=r"bad\.pt.*pixel_spacing_mm"):
        training_grid(bad, (1.0, 1.0, 1.0), tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt.*bad grid"):
        training_grid({"preprocessing": prep, "grid": {"x": 1}}, (1, 1, 1), tmp_path / "bad.pt")
