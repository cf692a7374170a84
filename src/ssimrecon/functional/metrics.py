"""Image quality metrics in two conventions (definitions in docs/definitions.md, "Metrics").

Paper convention, per slice and per region (:func:`batch_metrics`): inputs are magnitude images on
the scaled intensity axis and ``data_range`` L is the scaled reference volume's maximum.  SSIM is
:mod:`ssimrecon.functional.ssim` in float64 (scikit-image's Gaussian, population-covariance SSIM),
averaged over the region's pixels inside the SSIM map's valid region; PSNR = 10 log10(L^2 / MSE)
(inf when MSE is 0); relative error = ||ref - est||_2 / ||ref||_2; MSE = mean squared error; the
last three over the region's pixels.  A region is scored on a slice only if it has a pixel in the
SSIM valid region and the reference is not all zero in it; otherwise all four values are NaN (a rule
on the reference alone, so every method leaves out the same slices).

fastMRI convention, per volume (:func:`fastmri_volume_metrics`, as ``fastmri/evaluate.py``): L = the
maximum of the volume's reference slices; SSIM with a 7x7 uniform window and sample covariance
(scikit-image's defaults), the mean of the map without its 3-pixel border, averaged over the slices;
PSNR and NMSE = ||ref - est||^2 / ||ref||^2 and MSE over the whole volume.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from scipy.ndimage import uniform_filter

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.ssim import K1, K2, gaussian_taps, ssim_map

METRICS = ("ssim", "psnr", "rel_error", "mse")
#: per-volume metrics of the fastMRI convention
FASTMRI_METRICS = ("ssim", "psnr", "nmse", "mse")
#: side of the fastMRI (scikit-image default) uniform SSIM window, pixels
FASTMRI_WINDOW = 7
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

__all__ = [
    "METRICS",
    "FASTMRI_METRICS",
    "FASTMRI_WINDOW",
    "psnr_from_mse",
    "slice_metrics",
    "batch_metrics",
    "uniform_ssim",
    "fastmri_volume_metrics",
]


def psnr_from_mse(mse: ArrayT, data_range: float | ArrayT) -> ArrayT:
    """PSNR in dB = 10 log10(data_range^2 / mse), elementwise; inf where mse is 0.

    ``mse`` (any shape) and ``data_range`` (scalar or broadcastable): numpy arrays or torch tensors
    (the result has the type of ``mse``; validation during training passes tensors on the device).
    """
    if isinstance(mse, torch.Tensor):
        return 10.0 * torch.log10(data_range**2 / mse)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(np.float64(data_range) ** 2 / mse)


def _as_stack(ref: np.ndarray, est: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    if ref.shape != est.shape or ref.ndim != 3:
        raise SsimreconError(
            f"metrics: expected (S,H,W) reference and estimate of equal shape, got {ref.shape} "
            f"and {est.shape}"
        )
    if not np.isfinite(data_range) or data_range <= 0:
        raise SsimreconError(
            f"metrics: data_range must be a positive finite number, got {data_range!r}"
        )
    return ref, est


def batch_metrics(
    ref: np.ndarray, est: np.ndarray, data_range: float, region: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Metrics of every slice: ref, est (S,H,W), region (S,H,W) bool or None (the whole frame) ->
    {"ssim","psnr","rel_error","mse"}: float64 arrays (S,), NaN where the region is unscored."""
    ref, est = _as_stack(ref, est, data_range)
    if region is None:
        region = np.ones(ref.shape, dtype=bool)
    region = np.asarray(region, dtype=bool)
    if region.shape != ref.shape:
        raise SsimreconError(f"metrics: region shape {region.shape} is not {ref.shape}")
    weight = region.astype(np.float64)
    pixels = weight.sum(axis=(1, 2))
    diff2 = (ref - est) ** 2 * weight
    energy = np.sum(ref * ref * weight, axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        mse = diff2.sum(axis=(1, 2)) / pixels
        rel_error = np.sqrt(diff2.sum(axis=(1, 2)) / energy)
    psnr = psnr_from_mse(mse, float(data_range))
    radius = (gaussian_taps().numel() - 1) // 2
    valid = weight[:, radius:-radius, radius:-radius]
    with torch.no_grad():
        smap = ssim_map(
            torch.from_numpy(est)[:, None], torch.from_numpy(ref)[:, None], float(data_range)
        )[:, 0].numpy()
    valid_pixels = valid.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        ssim = np.sum(smap * valid, axis=(1, 2)) / valid_pixels
    scored = (valid_pixels > 0) & (energy > 0)
    out = {"ssim": ssim, "psnr": psnr, "rel_error": rel_error, "mse": mse}
    return {k: np.where(scored, v, np.nan).astype(np.float64) for k, v in out.items()}


def slice_metrics(
    ref: np.ndarray, est: np.ndarray, data_range: float, region: np.ndarray | None = None
) -> dict[str, float]:
    """Metrics of one slice: ref, est, region (H,W) -> {"ssim","psnr","rel_error","mse"}."""
    ref, est = np.asarray(ref), np.asarray(est)
    if ref.ndim != 2:
        raise SsimreconError(f"metrics: expected (H,W) slices, got shape {ref.shape}")
    out = batch_metrics(ref[None], est[None], data_range, None if region is None else region[None])
    return {k: float(v[0]) for k, v in out.items()}


def uniform_ssim(ref: np.ndarray, est: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM per slice with a FASTMRI_WINDOW uniform window and sample covariance: (S,H,W) -> (S,).

    Equals ``skimage.metrics.structural_similarity(ref[i], est[i], data_range=data_range)``.
    """
    ref, est = _as_stack(ref, est, data_range)
    size = (1, FASTMRI_WINDOW, FASTMRI_WINDOW)
    n = FASTMRI_WINDOW**2
    cov_norm = n / (n - 1)
    ux, uy = uniform_filter(ref, size), uniform_filter(est, size)
    vx = cov_norm * (uniform_filter(ref * ref, size) - ux * ux)
    vy = cov_norm * (uniform_filter(est * est, size) - uy * uy)
    vxy = cov_norm * (uniform_filter(ref * est, size) - ux * uy)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (FASTMRI_WINDOW - 1) // 2
    return s[:, pad:-pad, pad:-pad].mean(axis=(1, 2))


def fastmri_volume_metrics(ref: np.ndarray, est: np.ndarray) -> dict[str, float]:
    """fastMRI metrics of one volume of slices ref, est (S,H,W): {"ssim","psnr","nmse","mse",
    "data_range"} with data_range = ref.max()."""
    ref = np.asarray(ref, dtype=np.float64)
    data_range = float(ref.max()) if ref.size else 0.0
    if not data_range > 0:
        raise SsimreconError("fastMRI metrics: the reference volume is all zero")
    ref, est = _as_stack(ref, est, data_range)
    diff2 = float(np.sum((ref - est) ** 2))
    mse = diff2 / ref.size
    return {
        "ssim": float(uniform_ssim(ref, est, data_range).mean()),
        "psnr": float(psnr_from_mse(np.float64(mse), data_range)),
        "nmse": diff2 / float(np.sum(ref * ref)),
        "mse": mse,
        "data_range": data_range,
    }
