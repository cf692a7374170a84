"""HaarPSI, the Haar wavelet-based perceptual similarity index (Reisenhofer et al. 2018), per slice.

Definition (as the authors' code and piq 0.8.0's ``haarpsi``): intensities mapped to [0, 255] by
255 / L; a 2x2 mean subsampling (:func:`~ssimrecon.functional.iqa.filters.halve`); Haar filters of
sides 2, 4, 8 (scales 1-3), horizontal and vertical, correlated with 'same' zero padding
(k/2 - 1 before, k/2 after).  Per orientation, local similarity = the mean over scales 1-2 of
(2 |a||b| + C) / (a^2 + b^2 + C) of the reference (a) and estimate (b) coefficients; weights =
max(|a|, |b|) of scale 3.  HaarPSI = (logit(p) / alpha)^2 with p = sum(w sigmoid(alpha s)) / sum(w)
over both orientations and all pixels: 1 for identical images, higher is better.

Parameters: ``c`` and ``alpha`` (C in the 0-255 intensity units): the default is the medical set
C = 5, alpha = 4.9 of Karner et al. 2024 (tuned on radiologists' scores of medical images); the
original natural-image set is C = 30, alpha = 4.2 (Reisenhofer et al.).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssimrecon.functional.iqa.filters import correlate, halve
from ssimrecon.functional.iqa.scoring import Array, as_stacks, score_slices

#: Karner et al. 2024, medical images
MEDICAL_C = 5.0
MEDICAL_ALPHA = 4.9
#: Reisenhofer et al. 2018, natural images (piq's defaults)
ORIGINAL_C = 30.0
ORIGINAL_ALPHA = 4.2
SCALES = 3
#: the smallest side HaarPSI is computed on (piq's 2^(SCALES+1)); also the head box's side
MIN_SIDE = 2 ** (SCALES + 1)

__all__ = [
    "MEDICAL_C",
    "MEDICAL_ALPHA",
    "ORIGINAL_C",
    "ORIGINAL_ALPHA",
    "MIN_SIDE",
    "haarpsi_images",
    "haarpsi",
]


def _haar_coefficients(x: torch.Tensor) -> torch.Tensor:
    """Haar coefficients of (N,1,H,W) images -> (N, 2*SCALES, H, W), ordered h1, v1, h2, v2, ...

    The Haar filter of side k is outer(s, 1) / k with s = (+1 x k/2, -1 x k/2), and its transpose.
    """
    out = []
    for scale in range(1, SCALES + 1):
        k = 2**scale
        ones = torch.ones(k, dtype=x.dtype, device=x.device)
        step = torch.cat([ones[: k // 2], -ones[k // 2 :]]) / k
        before, after = k // 2 - 1, k // 2
        padded = F.pad(x, [before, after, before, after])
        out += [correlate(padded, step, ones), correlate(padded, ones, step)]
    return torch.cat(out, dim=1)


def haarpsi_images(
    ref: torch.Tensor, est: torch.Tensor, data_range: float, c: float, alpha: float
) -> torch.Tensor:
    """HaarPSI of (N,1,H,W) float64 image pairs with H, W >= MIN_SIDE -> (N,); NaN where both
    images have no scale-3 coefficient (sum of weights 0)."""
    coefficients = _haar_coefficients(halve(torch.cat([ref, est]) * (255.0 / data_range)))
    a, b = coefficients.abs().chunk(2)
    weights = torch.maximum(a[:, 2 * (SCALES - 1) :], b[:, 2 * (SCALES - 1) :])
    similarity = (2 * a[:, :4] * b[:, :4] + c) / (a[:, :4] ** 2 + b[:, :4] ** 2 + c)
    local = (similarity[:, 0:2] + similarity[:, 2:4]) / 2  # per orientation, scales 1-2
    p = (torch.sigmoid(alpha * local) * weights).sum(dim=(1, 2, 3)) / weights.sum(dim=(1, 2, 3))
    return (torch.logit(p) / alpha) ** 2


def haarpsi(
    ref: Array,
    est: Array,
    data_range: float,
    region: Array | None = None,
    *,
    c: float = MEDICAL_C,
    alpha: float = MEDICAL_ALPHA,
) -> Array:
    """HaarPSI per slice of (S,H,W) stacks -> (S,) float64 (scoring and head box:
    :mod:`ssimrecon.functional.iqa.scoring`, box side MIN_SIDE)."""
    stacks = as_stacks("haarpsi", ref, est, data_range, region)

    def metric(r: torch.Tensor, e: torch.Tensor, L: float) -> torch.Tensor:
        return haarpsi_images(r, e, L, c, alpha)

    return score_slices(metric, stacks, MIN_SIDE, MIN_SIDE)
