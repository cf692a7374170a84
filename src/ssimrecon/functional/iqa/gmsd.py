"""GMSD, the gradient magnitude similarity deviation (Xue et al. 2014), per slice.

Definition (as piq 0.8.0's ``gmsd``): intensities divided by L; a 2x2 mean subsampling
(:func:`~ssimrecon.functional.iqa.filters.halve`); gradient magnitudes m of the 3x3 Prewitt
operators ([-1 0 1] / 3 on three rows and its transpose; zero 'same' padding); gradient magnitude
similarity GMS = (2 m_ref m_est + T) / (m_ref^2 + m_est^2 + T) with T = 170 / 255^2; GMSD = the
population standard deviation of the GMS map (the authors' MATLAB ``std2`` divides by N - 1: a
relative difference below 1 / (2N), 4e-5 for a 96x120 map).  0 for identical images, lower is
better; symmetric.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssimrecon.functional.iqa.filters import correlate, halve
from ssimrecon.functional.iqa.scoring import Array, as_stacks, score_slices

T = 170.0 / 255.0**2
#: the smallest side: the subsampled image holds one whole 3x3 Prewitt neighbourhood
MIN_SIDE = 6

__all__ = ["T", "MIN_SIDE", "gmsd_images", "gmsd"]


def gmsd_images(ref: torch.Tensor, est: torch.Tensor, data_range: float) -> torch.Tensor:
    """GMSD of (N,1,H,W) float64 image pairs -> (N,)."""
    x = halve(torch.cat([ref, est]) / data_range)
    mean = torch.full((3,), 1.0 / 3, dtype=x.dtype, device=x.device)
    diff = torch.tensor([-1.0, 0.0, 1.0], dtype=x.dtype, device=x.device)
    padded = F.pad(x, [1, 1, 1, 1])
    gx, gy = correlate(padded, mean, diff), correlate(padded, diff, mean)
    m_ref, m_est = torch.sqrt(gx * gx + gy * gy).chunk(2)
    gms = (2 * m_ref * m_est + T) / (m_ref**2 + m_est**2 + T)
    return gms.flatten(1).std(dim=1, correction=0)


def gmsd(ref: Array, est: Array, data_range: float, region: Array | None = None) -> Array:
    """GMSD per slice of (S,H,W) stacks -> (S,) float64 (scoring and head box:
    :mod:`ssimrecon.functional.iqa.scoring`, box side MIN_SIDE)."""
    stacks = as_stacks("gmsd", ref, est, data_range, region)
    return score_slices(gmsd_images, stacks, MIN_SIDE, MIN_SIDE)
