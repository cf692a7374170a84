"""HaarPSI, VIF, GMSD and MS-SSIM vs piq 0.8.0 and HFEN vs direct scipy computations, on real brain
slices with noise, blur and undersampling artefacts; cases where each disagrees with SSIM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate, gaussian_filter, gaussian_laplace

from ssimrecon.functional.iqa.gmsd import gmsd
from ssimrecon.functional.iqa.haarpsi import (
    MEDICAL_ALPHA,
    MEDICAL_C,
    ORIGINAL_ALPHA,
    ORIGINAL_C,
    haarpsi,
)
from ssimrecon.functional.iqa.hfen import hfen
from ssimrecon.functional.iqa.msssim import WEIGHTS, ms_ssim, scale_weights
from ssimrecon.functional.iqa.vif import vif
from ssimrecon.functional.metrics import batch_metrics
from ssimrecon.kspace.fft import fft2c, ifft2c
from ssimrecon.kspace.mask import variable_density_mask
from tests.helpers.iqa import mni_slices, piq_module

#: max relative difference to piq accepted (float64 throughout); ``pytest -s -k piq`` prints the
#: measured ones
PIQ_RTOL = 1e-10


def _distorted() -> tuple[np.ndarray, np.ndarray, float]:
    """Three 197x233 MNI slices and estimates in [0, L]: Gaussian noise, blur + noise, and the
    zero-filled magnitude of a 4x variable-density undersampling."""
    ref, L = mni_slices()
    rng = np.random.default_rng(0)
    mask = variable_density_mask(ref.shape[1:], 4.0, 16, seed=0)
    est = np.stack(
        [
            ref[0] + 0.03 * L * rng.standard_normal(ref.shape[1:]),
            gaussian_filter(ref[1], 1.2) + 0.01 * L * rng.standard_normal(ref.shape[1:]),
            np.abs(ifft2c(fft2c(ref[2]) * mask)),
        ]
    )
    return ref, np.clip(est, 0, L), L


def _piq_inputs(ref: np.ndarray, est: np.ndarray) -> dict[str, torch.Tensor]:
    """piq takes (N,C,H,W) tensors; its first argument is the distorted image, the second the
    reference."""
    return {"x": torch.from_numpy(est)[:, None], "y": torch.from_numpy(ref)[:, None]}


def _assert_agrees(label: str, ours: np.ndarray, theirs: torch.Tensor) -> None:
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
    worst = float(np.max(np.abs(ours - theirs.numpy()) / np.abs(theirs.numpy())))
    print(f"{label}: max relative difference to piq {worst:.1e} over {ours.size} slices")
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=PIQ_RTOL, atol=0)


@pytest.mark.parametrize(
    ("c", "alpha"),
    [(MEDICAL_C, MEDICAL_ALPHA), (ORIGINAL_C, ORIGINAL_ALPHA)],
    ids=["medical", "original"],
)
def test_haarpsi_equals_piq(c: float, alpha: float) -> None:
    ref, est, L = _distorted()
    theirs = piq_module("haarpsi").haarpsi(
        **_piq_inputs(ref, est), data_range=L, reduction="none", c=c, alpha=alpha
    )
    ours = haarpsi(ref, est, L, c=c, alpha=alpha)
    _assert_agrees(f"HaarPSI C={c:g} alpha={alpha:g}", ours, theirs)
    assert np.all((ours > 0.2) & (ours < 0.95))  # real distortions, not saturated


def test_medical_haarpsi_parameters_are_karner_2024_and_the_default() -> None:
    assert (MEDICAL_C, MEDICAL_ALPHA) == (5.0, 4.9) and (ORIGINAL_C, ORIGINAL_ALPHA) == (30.0, 4.2)
    ref, est, L = _distorted()
    np.testing.assert_array_equal(haarpsi(ref, est, L), haarpsi(ref, est, L, c=5.0, alpha=4.9))
    # the medical C is smaller, so the same errors cost more
    assert np.all(haarpsi(ref, est, L) < haarpsi(ref, est, L, c=30.0, alpha=4.2))


def test_vif_equals_piq_and_is_not_symmetric() -> None:
    ref, est, L = _distorted()
    _assert_agrees(
        "VIF",
        vif(ref, est, L),
        piq_module("vif").vif_p(**_piq_inputs(ref, est), data_range=L, reduction="none"),
    )
    assert np.all(np.abs(vif(est, ref, L) - vif(ref, est, L)) > 0.01)


def test_gmsd_equals_piq() -> None:
    ref, est, L = _distorted()
    theirs = piq_module("gmsd").gmsd(**_piq_inputs(ref, est), data_range=L, reduction="none")
    _assert_agrees("GMSD", gmsd(ref, est, L), theirs)


def test_ms_ssim_equals_piq_with_five_scales_on_odd_and_even_sizes() -> None:
    ref, est, L = _distorted()
    msssim = piq_module("ms_ssim").multi_scale_ssim
    for r, e in ((ref, est), (ref[:, :196, :232], est[:, :196, :232])):
        assert scale_weights(*r.shape[1:]) == WEIGHTS
        _assert_agrees(
            f"MS-SSIM {r.shape[1]}x{r.shape[2]}",
            ms_ssim(r, e, L),
            msssim(**_piq_inputs(r, e), data_range=L, reduction="none"),
        )


@pytest.mark.parametrize(("side", "scales"), [(160, 4), (60, 3), (30, 2), (11, 1)])
def test_ms_ssim_on_small_images_equals_piq_with_fewer_scales(side: int, scales: int) -> None:
    """Below 161 pixels, the largest number of scales that fits, with the first weights scaled to
    sum 1: piq with those weights (piq itself refuses images under 161 with its 5 default ones)."""
    ref, est, L = _distorted()
    r, e = ref[:, 30 : 30 + side, 20:220], est[:, 30 : 30 + side, 20:220]
    weights = scale_weights(*r.shape[1:])
    assert len(weights) == scales and sum(weights) == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(
        np.array(weights) / np.array(WEIGHTS[:scales]), weights[0] / WEIGHTS[0]
    )
    theirs = piq_module("ms_ssim").multi_scale_ssim(
        **_piq_inputs(r, e),
        data_range=L,
        reduction="none",
        scale_weights=torch.tensor(WEIGHTS[:scales], dtype=torch.float64),
    )
    _assert_agrees(f"MS-SSIM {side}x200, {scales} scales", ms_ssim(r, e, L), theirs)
    assert np.isnan(ms_ssim(r[:, :10], e[:, :10], L)).all()


def _fspecial_log(size: int = 15, sigma: float = 1.5) -> np.ndarray:
    """MATLAB's fspecial('log', size, sigma), written out in numpy."""
    x, y = np.meshgrid(np.arange(size) - size // 2, np.arange(size) - size // 2)
    h = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    h /= h.sum()
    h1 = h * (x**2 + y**2 - 2 * sigma**2) / sigma**4
    return h1 - h1.sum() / h1.size


def test_hfen_is_the_relative_log_error_norm() -> None:
    """Ravishankar & Bresler 2011: ||LoG(est) - LoG(ref)|| / ||LoG(ref)|| with the 15x15 LoG of
    sigma 1.5, zero padding; checked with scipy's correlate, and against scipy's own Gaussian
    Laplacian of sigma 1.5 (a 13-tap construction) to 0.5 %."""
    ref, est, L = _distorted()
    kernel = _fspecial_log()
    assert kernel.sum() == pytest.approx(0.0, abs=1e-15)
    ours = hfen(ref, est, L)
    for i in range(len(ref)):
        log_ref, log_est = (correlate(im, kernel, mode="constant") for im in (ref[i], est[i]))
        direct = np.linalg.norm(log_est - log_ref) / np.linalg.norm(log_ref)
        assert ours[i] == pytest.approx(direct, rel=1e-12)
        log_ref, log_est = (gaussian_laplace(im, 1.5, mode="constant") for im in (ref[i], est[i]))
        assert ours[i] == pytest.approx(
            np.linalg.norm(log_est - log_ref) / np.linalg.norm(log_ref), rel=5e-3
        )
    # scale invariant: data_range does not enter
    np.testing.assert_allclose(hfen(3 * ref, 3 * est, 1.0), ours, rtol=1e-12)


def test_identical_images_score_perfectly() -> None:
    ref, _, L = _distorted()
    np.testing.assert_allclose(haarpsi(ref, ref, L), 1.0, rtol=1e-12)
    # VIF's floor eps = 1e-8 on the distortion variance keeps it just below 1
    np.testing.assert_allclose(vif(ref, ref, L), 1.0, rtol=1e-8)
    np.testing.assert_allclose(ms_ssim(ref, ref, L), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(gmsd(ref, ref, L), 0.0)
    np.testing.assert_array_equal(hfen(ref, ref, L), 0.0)


def test_tensors_in_tensors_out_equal_to_numpy() -> None:
    ref, est, L = _distorted()
    r32, e32 = torch.from_numpy(ref).float(), torch.from_numpy(est).float()
    for metric in (haarpsi, vif, gmsd, ms_ssim, hfen):
        from_numpy = metric(r32.numpy(), e32.numpy(), L)
        from_torch = metric(r32, e32, L)
        assert isinstance(from_torch, torch.Tensor) and from_torch.dtype == torch.float64
        assert from_torch.device == r32.device and from_torch.shape == (3,)
        np.testing.assert_array_equal(from_torch.numpy(), from_numpy)


def test_each_new_metric_disagrees_with_ssim_somewhere() -> None:
    """Blur (sigma 1 px) vs 1 % Gaussian noise: SSIM prefers the blur, which removes the cortex's
    fine structure; HaarPSI, VIF, GMSD and HFEN prefer the noisy image.  A 5 % intensity offset
    (a magnitude noise floor) vs a slight blur (sigma 0.6 px): SSIM's luminance term in the zero
    background prefers the blur, MS-SSIM (luminance only at the coarsest scale) the offset."""
    ref, L = mni_slices((90,))
    rng = np.random.default_rng(1)
    blur = gaussian_filter(ref, (0, 1.0, 1.0))
    noise = ref + 0.01 * L * rng.standard_normal(ref.shape)
    ssim = {k: batch_metrics(ref, e, L)["ssim"][0] for k, e in (("blur", blur), ("noise", noise))}
    assert ssim["blur"] > ssim["noise"] + 0.02
    assert haarpsi(ref, noise, L)[0] > haarpsi(ref, blur, L)[0] + 0.1
    assert vif(ref, noise, L)[0] > vif(ref, blur, L)[0] + 0.1
    assert gmsd(ref, noise, L)[0] < gmsd(ref, blur, L)[0] - 0.02
    assert hfen(ref, noise, L)[0] < hfen(ref, blur, L)[0] - 0.1

    slight_blur = gaussian_filter(ref, (0, 0.6, 0.6))
    offset = ref + 0.05 * L
    assert (
        batch_metrics(ref, slight_blur, L)["ssim"][0]
        > batch_metrics(ref, offset, L)["ssim"][0] + 0.3
    )
    assert ms_ssim(ref, offset, L)[0] > ms_ssim(ref, slight_blur, L)[0]
