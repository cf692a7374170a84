"""HFEN, the high-frequency error norm (Ravishankar & Bresler 2011), per slice.

Definition: HFEN = ||LoG * (est - ref)||_2 / ||LoG * ref||_2, with LoG the 15x15 Laplacian of
Gaussian of sigma 1.5 pixels of the authors' code, MATLAB's ``fspecial('log', 15, 1.5)``: with
g = exp(-(x^2 + y^2) / (2 sigma^2)) / sum(g) on the integer grid -7..7, LoG = g (x^2 + y^2 -
2 sigma^2) / sigma^4 minus its mean (so it sums to zero); correlated with 'same' zero padding
(MATLAB's ``imfilter`` default).  0 for identical images, lower is better; scale invariant, so
``data_range`` is only checked.

Region: like the relative error, the norms run over the region's pixels of the LoG images of the
whole frame (no bounding box).  NaN where the region is unscored (see
:mod:`ssimrecon.functional.iqa.scoring`) or the reference's LoG is zero on it.

Implementation: the LoG is the sum of three separable windows (g is separable: g = g1 g1^T),
outer(g1 (x^2 - 2 sigma^2) / sigma^4, g1) + outer(g1, g1 x^2 / sigma^4) - mean * ones, filtered
each as one pass along W and one along H.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssimrecon.functional.iqa.filters import correlate, gaussian_taps
from ssimrecon.functional.iqa.scoring import Array, as_stacks

LOG_SIZE = 15
LOG_SIGMA = 1.5

__all__ = ["LOG_SIZE", "LOG_SIGMA", "log_filter", "hfen"]


def log_filter(x: torch.Tensor) -> torch.Tensor:
    """(N,H,W) images correlated with ``fspecial('log', LOG_SIZE, LOG_SIGMA)``, zero 'same'
    padding -> (N,H,W)."""
    g = gaussian_taps(LOG_SIZE, LOG_SIGMA, x)
    pos2 = (torch.arange(LOG_SIZE, dtype=x.dtype, device=x.device) - LOG_SIZE // 2) ** 2
    s2 = LOG_SIGMA**2
    mean = (2 * (g * pos2).sum() - 2 * s2) / s2**2 / LOG_SIZE**2  # of the unshifted LoG
    ones = torch.ones_like(g)
    pad = LOG_SIZE // 2
    padded = F.pad(x, [pad, pad, pad, pad])
    return (
        correlate(padded, g * (pos2 - 2 * s2) / s2**2, g)
        + correlate(padded, g, g * pos2 / s2**2)
        - mean * correlate(padded, ones, ones)
    )


def hfen(ref: Array, est: Array, data_range: float, region: Array | None = None) -> Array:
    """HFEN per slice of (S,H,W) stacks -> (S,) float64; over the region's pixels if given."""
    stacks = as_stacks("hfen", ref, est, data_range, region)
    log_ref = log_filter(stacks.ref)
    log_err = log_filter(stacks.est - stacks.ref)
    weight = torch.ones_like(log_ref) if stacks.region is None else stacks.region.to(log_ref.dtype)
    num = (log_err**2 * weight).sum(dim=(1, 2))
    den = (log_ref**2 * weight).sum(dim=(1, 2))
    scored = stacks.scored() & (den > 0)
    return stacks.output(torch.where(scored, torch.sqrt(num / den), torch.nan))
