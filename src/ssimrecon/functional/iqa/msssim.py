"""MS-SSIM, the multi-scale structural similarity (Wang, Simoncelli & Bovik 2003), per slice.

Definition (as piq 0.8.0's ``multi_scale_ssim``): intensities divided by L; M scales; before each
scale after the first, both images get one replicated row and column at the top/left when either
side is odd and are mean-pooled 2x2.  At each scale, the SSIM terms of
:mod:`ssimrecon.functional.ssim` (Gaussian window 11 taps, sigma 1.5, K1 = 0.01, K2 = 0.03,
population covariance, valid region): cs_j = mean of (2 s_xy + C2) / (s_x^2 + s_y^2 + C2) at
scales j < M and the mean SSIM map at scale M, each clipped at 0.  MS-SSIM = prod_j cs_j^w_j *
SSIM_M^w_M; higher is better; symmetric.

Scales and weights: M = 5 with Wang et al.'s weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333;
they sum to 1.0001 and are used as published) when the image's smaller side is at least 161
(= 10 * 2^4 + 1, the size the 11-tap window fits at the fifth scale); a smaller image gets the
largest M with side >= 10 * 2^(M-1) + 1 (81, 41, 21, 11) and the first M weights renormalised to
sum 1 (M = 1 is plain SSIM).  Below 11 pixels it is NaN.  The head box is grown to 161 where the
frame allows, so a 160-row frame scores 4 scales.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssimrecon.functional.iqa.filters import filter_valid
from ssimrecon.functional.iqa.scoring import Array, as_stacks, score_slices
from ssimrecon.functional.ssim import K1, K2, gaussian_taps

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = gaussian_taps().numel()
#: the side the five scales need (also the head box's side) and the side one scale needs
MIN_SIDE = (WINDOW - 1) * 2 ** (len(WEIGHTS) - 1) + 1
SMALLEST_SIDE = WINDOW

__all__ = ["WEIGHTS", "MIN_SIDE", "SMALLEST_SIDE", "scale_weights", "ms_ssim_images", "ms_ssim"]


def scale_weights(height: int, width: int) -> tuple[float, ...]:
    """Weights of the scales an image of this size gets (empty below SMALLEST_SIDE)."""
    scales = 0
    while scales < len(WEIGHTS) and min(height, width) >= (WINDOW - 1) * 2**scales + 1:
        scales += 1
    if scales == len(WEIGHTS):
        return WEIGHTS
    total = sum(WEIGHTS[:scales])
    return tuple(w / total for w in WEIGHTS[:scales])


def ms_ssim_images(ref: torch.Tensor, est: torch.Tensor, data_range: float) -> torch.Tensor:
    """MS-SSIM of (N,1,H,W) float64 image pairs with H, W >= SMALLEST_SIDE -> (N,)."""
    weights = scale_weights(ref.shape[-2], ref.shape[-1])
    x = torch.cat([ref, est]) / data_range
    taps = gaussian_taps().to(dtype=x.dtype, device=x.device)
    c1, c2 = K1**2, K2**2
    terms = []
    for scale in range(len(weights)):
        if scale > 0:
            pad = max(x.shape[-2] % 2, x.shape[-1] % 2)
            x = F.avg_pool2d(F.pad(x, [pad, 0, pad, 0], mode="replicate"), kernel_size=2)
        r, e = x.chunk(2)
        mu_r, mu_e, m_rr, m_ee, m_re = filter_valid(
            torch.cat([r, e, r * r, e * e, r * e], dim=1), taps
        ).unbind(dim=1)
        cs = (2 * (m_re - mu_r * mu_e) + c2) / (m_rr - mu_r**2 + m_ee - mu_e**2 + c2)
        if scale == len(weights) - 1:
            cs = cs * (2 * mu_r * mu_e + c1) / (mu_r**2 + mu_e**2 + c1)
        terms.append(torch.relu(cs.mean(dim=(1, 2))))
    w = torch.tensor(weights, dtype=x.dtype, device=x.device)
    return torch.prod(torch.stack(terms) ** w[:, None], dim=0)


def ms_ssim(ref: Array, est: Array, data_range: float, region: Array | None = None) -> Array:
    """MS-SSIM per slice of (S,H,W) stacks -> (S,) float64 (scoring and head box:
    :mod:`ssimrecon.functional.iqa.scoring`, box side MIN_SIDE, NaN below SMALLEST_SIDE)."""
    stacks = as_stacks("ms_ssim", ref, est, data_range, region)
    return score_slices(ms_ssim_images, stacks, MIN_SIDE, SMALLEST_SIDE)
