"""How the new metrics are scored: the head region as the grown bounding box (checked against piq
on hand-computed crops), HFEN over the region's pixels, the NaN rules and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate, gaussian_filter

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.iqa.gmsd import gmsd
from ssimrecon.functional.iqa.haarpsi import MEDICAL_ALPHA, MEDICAL_C, haarpsi
from ssimrecon.functional.iqa.hfen import hfen
from ssimrecon.functional.iqa.msssim import ms_ssim
from ssimrecon.functional.iqa.scoring import grown_box, region_box
from ssimrecon.functional.iqa.vif import vif
from ssimrecon.functional.regions import head_mask
from tests.helpers.iqa import mni_slices, piq_module

BOX_METRICS = {"haarpsi": haarpsi, "vif": vif, "gmsd": gmsd, "ms_ssim": ms_ssim}
ALL_METRICS = {**BOX_METRICS, "hfen": hfen}


def _pair() -> tuple[np.ndarray, np.ndarray, float]:
    """Three 197x233 MNI slices and blurred, noisy estimates in [0, L]."""
    ref, L = mni_slices()
    rng = np.random.default_rng(2)
    est = gaussian_filter(ref, (0, 0.8, 0.8)) + 0.02 * L * rng.standard_normal(ref.shape)
    return ref, np.clip(est, 0, L), L


def _piq(name: str, ref: np.ndarray, est: np.ndarray, L: float) -> np.ndarray:
    """piq 0.8.0's value of one (H,W) pair (its first argument is the distorted image)."""
    x, y = torch.from_numpy(est)[None, None], torch.from_numpy(ref)[None, None]
    if name == "haarpsi":
        out = piq_module("haarpsi").haarpsi(x, y, data_range=L, c=MEDICAL_C, alpha=MEDICAL_ALPHA)
    elif name == "vif":
        out = piq_module("vif").vif_p(x, y, data_range=L)
    elif name == "gmsd":
        out = piq_module("gmsd").gmsd(x, y, data_range=L)
    else:
        out = piq_module("ms_ssim").multi_scale_ssim(x, y, data_range=L)
    return float(out)


@pytest.mark.parametrize(
    ("box", "size", "min_side", "expected"),
    [
        ((10, 20), 100, 16, (7, 23)),  # grown about the box
        ((10, 21), 100, 16, (8, 24)),  # odd growth: the extra pixel after the box
        ((0, 4), 100, 16, (0, 16)),  # shifted inward at the start
        ((95, 100), 100, 16, (84, 100)),  # and at the end
        ((10, 60), 100, 16, (10, 60)),  # large enough already
        ((2, 8), 12, 16, (0, 12)),  # the frame is smaller than min_side
    ],
)
def test_grown_box(
    box: tuple[int, int], size: int, min_side: int, expected: tuple[int, int]
) -> None:
    assert grown_box(*box, size, min_side) == slice(*expected)


def test_region_box_of_a_rectangle() -> None:
    region = np.zeros((197, 233), dtype=bool)
    region[50:150, 60:180] = True
    region[70, 200] = True  # one stray pixel widens the box
    assert region_box(region, 41) == (slice(50, 150), slice(60, 201))
    assert region_box(region, 161) == (slice(20, 181), slice(50, 211))


@pytest.mark.parametrize("name", list(BOX_METRICS))
def test_region_is_the_metric_on_the_grown_bounding_box(name: str) -> None:
    """A 100x120 rectangle region: HaarPSI, VIF, GMSD use exactly its box; MS-SSIM grows it to
    161 x 161 about its centre (rows 20-180, columns 40-200); each equals piq on that crop."""
    ref, est, L = _pair()
    region = np.zeros(ref.shape, dtype=bool)
    region[:, 50:150, 60:180] = True
    rows, cols = (
        (slice(20, 181), slice(40, 201)) if name == "ms_ssim" else (slice(50, 150), slice(60, 180))
    )
    got = BOX_METRICS[name](ref, est, L, region)
    expected = [_piq(name, r[rows, cols], e[rows, cols], L) for r, e in zip(ref, est)]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert np.all(np.abs(got - BOX_METRICS[name](ref, est, L)) > 1e-4)  # not the frame's value


@pytest.mark.parametrize("name", ["haarpsi", "vif", "gmsd"])
def test_head_mask_region_is_its_bounding_box(name: str) -> None:
    """On real head masks the boxes exceed these metrics' minimum sides, so the crop is exactly
    the mask's bounding box; slices with boxes of different sizes in one call."""
    ref, est, L = _pair()
    region = head_mask(ref, L)
    got = BOX_METRICS[name](ref, est, L, region)
    sizes = set()
    for i in range(len(ref)):
        rows, cols = np.flatnonzero(region[i].any(axis=1)), np.flatnonzero(region[i].any(axis=0))
        crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        sizes.add(ref[i][crop].shape)
        assert got[i] == pytest.approx(_piq(name, ref[i][crop], est[i][crop], L), rel=1e-10)
    assert len(sizes) == len(ref) and min(min(s) for s in sizes) > 41


def test_full_region_is_the_frame() -> None:
    ref, est, L = _pair()
    full = np.ones(ref.shape, dtype=bool)
    for name, metric in ALL_METRICS.items():
        np.testing.assert_allclose(
            metric(ref, est, L, full), metric(ref, est, L), rtol=1e-12, err_msg=name
        )


def test_hfen_in_a_region_uses_its_pixels_of_the_whole_frame_log() -> None:
    ref, est, L = _pair()
    region = head_mask(ref, L)
    x, y = np.meshgrid(np.arange(15) - 7, np.arange(15) - 7)
    g = np.exp(-(x**2 + y**2) / 4.5)
    g /= g.sum()
    kernel = g * (x**2 + y**2 - 4.5) / 1.5**4
    kernel -= kernel.mean()
    got = hfen(ref, est, L, region)
    for i in range(len(ref)):
        log_ref = correlate(ref[i], kernel, mode="constant")[region[i]]
        log_est = correlate(est[i], kernel, mode="constant")[region[i]]
        assert got[i] == pytest.approx(
            np.linalg.norm(log_est - log_ref) / np.linalg.norm(log_ref), rel=1e-12
        )


def test_unscored_slices_are_nan() -> None:
    """NaN where the region is empty, where the reference is all zero in it (background corner)
    or on the whole slice, and where the frame is smaller than the metric's smallest side."""
    ref, est, L = _pair()
    assert np.all(ref[:, :20, :20] == 0)
    region = np.zeros(ref.shape, dtype=bool)
    region[0] = head_mask(ref[0], L)
    region[2, :20, :20] = True  # background only
    zero_ref = ref.copy()
    zero_ref[1] = 0.0
    for name, metric in ALL_METRICS.items():
        in_region = metric(ref, est, L, region)
        assert np.isfinite(in_region[0]) and np.isnan(in_region[1:]).all(), name
        frame = metric(zero_ref, est, L)
        assert np.isfinite(frame[[0, 2]]).all() and np.isnan(frame[1]), name
    small = {"haarpsi": 15, "vif": 40, "gmsd": 5, "ms_ssim": 10}
    for name, side in small.items():
        metric = BOX_METRICS[name]
        assert np.isnan(metric(ref[:, :side, :], est[:, :side, :], L)).all(), name
        assert np.isfinite(metric(ref[:, 60 : 61 + side, :], est[:, 60 : 61 + side, :], L)).all(), (
            name
        )
        # a region's box clamped to a frame that is too small is NaN as well
        strip = (slice(None), slice(60, 60 + side))
        everywhere = np.ones(ref[strip].shape, dtype=bool)
        assert np.isnan(metric(ref[strip], est[strip], L, everywhere)).all(), name


def test_errors_name_the_metric() -> None:
    ref, est, L = _pair()
    for name, metric in ALL_METRICS.items():
        with pytest.raises(SsimreconError, match=rf"^{name}: expected \(S,H,W\)"):
            metric(ref, est[:, :-1], L)
        with pytest.raises(SsimreconError, match=rf"^{name}: expected \(S,H,W\)"):
            metric(ref[0], est[0], L)
        with pytest.raises(SsimreconError, match=rf"^{name}: data_range"):
            metric(ref, est, 0.0)
        with pytest.raises(SsimreconError, match=rf"^{name}: region shape"):
            metric(ref, est, L, np.ones(ref.shape[1:], dtype=bool))
