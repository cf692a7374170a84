"""Per-slice image quality metrics: SSIM, PSNR, relative error, MSE (definitions in
shared/design.md).

Inputs are magnitude images on the scaled intensity axis; ``data_range`` is the reference volume's
maximum after scaling.  SSIM comes from :mod:`ssimrecon.functional.ssim` in float64 (equals
scikit-image's
Gaussian, population-covariance SSIM); PSNR = 10 log10(L^2 / MSE) (inf when MSE is 0);
relative error = ||ref - est||_2 / ||ref||_2; MSE = mean squared error.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.ssim import ssim

METRICS = ("ssim", "psnr", "rel_error", "mse")
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

__all__ = ["METRICS", "psnr_from_mse", "slice_metrics", "batch_metrics"]


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


def batch_metrics(ref: np.ndarray, est: np.ndarray, data_range: float) -> dict[str, np.ndarray]:
    """Metrics of every slice: ref, est (S,H,W) -> {"ssim","psnr","rel_error","mse"}: float64 arrays
    (S,)."""
    ref, est = _as_stack(ref, est, data_range)
    diff = ref - est
    mse = np.mean(diff * diff, axis=(1, 2))
    psnr = psnr_from_mse(mse, float(data_range))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_error = np.sqrt(np.sum(diff * diff, axis=(1, 2))) / np.sqrt(
            np.sum(ref * ref, axis=(1, 2))
        )
    with torch.no_grad():
        s = ssim(
            torch.from_numpy(est)[:, None],
            torch.from_numpy(ref)[:, None],
            float(data_range),
            reduction="none",
        )
    return {"ssim": s.numpy().astype(np.float64), "psnr": psnr, "rel_error": rel_error, "mse": mse}


def slice_metrics(ref: np.ndarray, est: np.ndarray, data_range: float) -> dict[str, float]:
    """Metrics of one slice: ref, est (H,W) -> {"ssim","psnr","rel_error","mse"} as floats."""
    ref, est = np.asarray(ref), np.asarray(est)
    if ref.ndim != 2:
        raise SsimreconError(f"metrics: expected (H,W) slices, got shape {ref.shape}")
    out = batch_metrics(ref[None], est[None], data_range)
    return {k: float(v[0]) for k, v in out.items()}
