"""Filters the quality metrics share, on float64 tensors (..., H, W) of any device.

Every window the metrics use is separable (or a sum of separable ones), so a 2-D correlation is
one pass along W and one along H, each a product with a banded matrix: on CPUs this is several
times faster in float64 than ``conv2d`` (which has no optimised float64 path there) and needs no
more memory than the output; on GPUs it is a matrix product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gaussian_taps", "band_matrix", "correlate", "filter_valid", "halve"]


def gaussian_taps(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """Normalised 1-D Gaussian (size,) of standard deviation ``sigma`` pixels centred on the middle
    tap, in ``like``'s dtype/device; its outer product with itself is MATLAB's
    ``fspecial('gaussian', size, sigma)``."""
    pos = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    taps = torch.exp(-(pos * pos) / (2 * sigma * sigma))
    return taps / taps.sum()


def band_matrix(n: int, taps: torch.Tensor) -> torch.Tensor:
    """(n, n-k+1) matrix B with (x @ B)[j] = sum_i taps[i] x[j + i]: valid 1-D correlation."""
    k = taps.numel()
    out = torch.zeros(n, n - k + 1, dtype=taps.dtype, device=taps.device)
    cols = torch.arange(n - k + 1, device=taps.device)
    for i in range(k):
        out[cols + i, cols] = taps[i]
    return out


def correlate(x: torch.Tensor, along_h: torch.Tensor, along_w: torch.Tensor) -> torch.Tensor:
    """Valid correlation with the window outer(along_h, along_w): (..., H, W) ->
    (..., H-kh+1, W-kw+1)."""
    rows = x @ band_matrix(x.shape[-1], along_w)
    return band_matrix(x.shape[-2], along_h).T @ rows


def filter_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Valid correlation with the symmetric separable window outer(taps, taps)."""
    return correlate(x, taps, taps)


def halve(x: torch.Tensor) -> torch.Tensor:
    """2x2 mean pooling after one zero row and column at the bottom/right when either side is odd
    (HaarPSI's and GMSD's viewing-distance subsampling, as piq): (N,C,H,W) -> (N,C,~H/2,~W/2)."""
    pad = max(x.shape[-2] % 2, x.shape[-1] % 2)
    return F.avg_pool2d(F.pad(x, [0, pad, 0, pad]), kernel_size=2, stride=2)
