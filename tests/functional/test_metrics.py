"""Metrics vs scikit-image and direct numpy recomputations: per slice and region (paper convention)
and per volume (fastMRI convention)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.metrics import (
    METRICS,
    batch_metrics,
    fastmri_volume_metrics,
    psnr_from_mse,
    slice_metrics,
    uniform_ssim,
)
from tests.helpers.reference import skimage_ssim_map


def _stack() -> tuple[np.ndarray, np.ndarray, float]:
    """Three 128x128 real-image slices scaled by 0.8/max, and degraded estimates."""
    rng = np.random.default_rng(0)
    imgs = [data.camera()[:128, :128], data.moon()[100:228, 100:228], data.coins()[:128, :128]]
    ref = np.stack([im.astype(np.float64) for im in imgs])
    ref = 0.8 * ref / ref.max()
    est = np.stack([gaussian_filter(r, s) for r, s in zip(ref, (0.8, 1.5, 2.5))])
    est = est + 0.02 * rng.standard_normal(est.shape)
    return ref, est, float(ref.max())


def test_slice_metrics_match_skimage_and_numpy() -> None:
    ref, est, L = _stack()
    for r, e in zip(ref, est):
        m = slice_metrics(r, e, L)
        assert set(m) == set(METRICS) and all(isinstance(v, float) for v in m.values())
        expected_ssim = structural_similarity(
            r, e, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L
        )
        assert m["ssim"] == pytest.approx(expected_ssim, abs=1e-10)
        assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(r, e, data_range=L), rel=1e-12)
        mse = float(np.mean((r - e) ** 2))
        assert m["mse"] == pytest.approx(mse, rel=1e-12)
        assert m["rel_error"] == pytest.approx(np.linalg.norm(r - e) / np.linalg.norm(r), rel=1e-12)
        assert m["psnr"] == pytest.approx(10 * math.log10(L**2 / mse), rel=1e-12)


def test_batch_equals_per_slice_and_orders_degradations() -> None:
    ref, est, L = _stack()
    batch = batch_metrics(ref, est.astype(np.float32), L)
    assert set(batch) == set(METRICS)
    for key in METRICS:
        assert batch[key].shape == (3,) and batch[key].dtype == np.float64
    for i in range(3):
        single = slice_metrics(ref[i], est[i].astype(np.float32), L)
        for key in METRICS:
            assert batch[key][i] == pytest.approx(single[key], rel=1e-12)
    # a more blurred estimate of the same slice scores worse on every metric
    worse = batch_metrics(ref[:1], gaussian_filter(ref[:1], (0, 3, 3)), L)
    better = batch_metrics(ref[:1], gaussian_filter(ref[:1], (0, 0.7, 0.7)), L)
    assert better["ssim"][0] > worse["ssim"][0]
    assert better["psnr"][0] > worse["psnr"][0]
    assert better["mse"][0] < worse["mse"][0] and better["rel_error"][0] < worse["rel_error"][0]


def test_perfect_reconstruction() -> None:
    ref, _, L = _stack()
    m = slice_metrics(ref[0], ref[0].copy(), L)
    assert m["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert m["psnr"] == math.inf and m["mse"] == 0.0 and m["rel_error"] == 0.0


def test_errors() -> None:
    a = np.zeros((2, 16, 16))
    with pytest.raises(SsimreconError, match="equal shape"):
        batch_metrics(a, np.zeros((2, 16, 17)), 1.0)
    with pytest.raises(SsimreconError, match="data_range"):
        batch_metrics(a, a, 0.0)
    with pytest.raises(SsimreconError, match=r"\(H,W\)"):
        slice_metrics(a, a, 1.0)


def test_psnr_from_mse_is_the_same_for_numpy_and_torch() -> None:
    mse = np.array([1e-4, 2.5e-3, 0.0])
    data_range = np.array([1.0, 2.0, 1.0])
    expected = [10 * math.log10(1.0 / 1e-4), 10 * math.log10(4.0 / 2.5e-3), math.inf]
    from_numpy = psnr_from_mse(mse, data_range)
    from_torch = psnr_from_mse(torch.from_numpy(mse), torch.from_numpy(data_range))
    assert isinstance(from_numpy, np.ndarray) and isinstance(from_torch, torch.Tensor)
    assert from_numpy.tolist() == pytest.approx(expected, rel=1e-12)
    assert from_torch.tolist() == pytest.approx(expected, rel=1e-12)
    assert psnr_from_mse(np.array([0.01]), 0.5)[0] == pytest.approx(10 * math.log10(25.0))


def _disc_region(shape: tuple[int, int], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(yy - shape[0] / 2, xx - shape[1] / 2) < radius


def test_region_metrics_are_the_map_and_pixel_means_inside_the_region() -> None:
    """SSIM in a region = mean of scikit-image's full Gaussian SSIM map over the region's pixels
    inside the valid region (5-pixel border); MSE/PSNR/relative error over the region's pixels."""
    ref, est, L = _stack()
    region = _disc_region(ref.shape[1:], 40)
    for r, e in zip(ref, est):
        m = slice_metrics(r, e, L, region)
        full, valid = skimage_ssim_map(r, e, L)
        assert m["ssim"] == pytest.approx(full[region & valid].mean(), abs=1e-10)
        mse = float(np.mean((r[region] - e[region]) ** 2))
        assert m["mse"] == pytest.approx(mse, rel=1e-12)
        assert m["psnr"] == pytest.approx(10 * math.log10(L**2 / mse), rel=1e-12)
        rel = np.linalg.norm(r[region] - e[region]) / np.linalg.norm(r[region])
        assert m["rel_error"] == pytest.approx(rel, rel=1e-12)
        # the region changes the numbers: they are not the whole-frame ones
        assert m["mse"] != pytest.approx(slice_metrics(r, e, L)["mse"], rel=1e-3)
    # a full region is the whole frame
    whole = batch_metrics(ref, est, L, np.ones(ref.shape, dtype=bool))
    frame = batch_metrics(ref, est, L)
    for key in METRICS:
        np.testing.assert_allclose(whole[key], frame[key], rtol=1e-12)


def test_unscored_regions_are_nan_for_every_metric() -> None:
    ref, est, L = _stack()
    region = np.zeros(ref.shape, dtype=bool)
    region[0] = _disc_region(ref.shape[1:], 30)
    region[1, :3, :3] = True  # only in the SSIM border: no valid SSIM pixel
    region[2] = True
    zero_ref = ref.copy()
    zero_ref[2] = 0.0  # all-zero reference in the region: relative error undefined
    out = batch_metrics(zero_ref, est, L, region)
    for key in METRICS:
        assert np.isfinite(out[key][0]), key
        assert np.isnan(out[key][1]) and np.isnan(out[key][2]), key
    with pytest.raises(SsimreconError, match="region shape"):
        batch_metrics(ref, est, L, region[:, :10])


def test_fastmri_volume_metrics_equal_fastmri_evaluate() -> None:
    """As facebookresearch/fastMRI fastmri/evaluate.py: data_range = gt.max() of the volume,
    skimage's default SSIM (7x7 uniform, sample covariance) averaged over slices, PSNR via skimage
    on the volume, NMSE = ||gt - pred||^2 / ||gt||^2."""
    ref, est, _ = _stack()
    got = fastmri_volume_metrics(ref, est)
    maxval = ref.max()
    ssim = np.mean([structural_similarity(g, p, data_range=maxval) for g, p in zip(ref, est)])
    assert got["ssim"] == pytest.approx(ssim, abs=1e-10)
    assert got["psnr"] == pytest.approx(peak_signal_noise_ratio(ref, est, data_range=maxval))
    nmse = np.linalg.norm(ref - est) ** 2 / np.linalg.norm(ref) ** 2
    assert got["nmse"] == pytest.approx(nmse, rel=1e-12)
    assert got["mse"] == pytest.approx(np.mean((ref - est) ** 2), rel=1e-12)
    assert got["data_range"] == maxval
    per_slice = uniform_ssim(ref, est, maxval)
    for g, p, value in zip(ref, est, per_slice):
        assert value == pytest.approx(structural_similarity(g, p, data_range=maxval), abs=1e-10)
    # it differs from the paper's Gaussian SSIM on the same images
    assert abs(got["ssim"] - batch_metrics(ref, est, maxval)["ssim"].mean()) > 1e-3
    with pytest.raises(SsimreconError, match="all zero"):
        fastmri_volume_metrics(np.zeros((1, 16, 16)), np.zeros((1, 16, 16)))
