"""Centred orthonormal 2D FFTs over the last two axes (numpy/scipy and torch).

Convention (docs/definitions.md): ``k = fftshift(fft2(ifftshift(x), norm="ortho"))`` over axes (-2,
-1), so the DC sample sits at index ``(H // 2, W // 2)`` and Parseval holds exactly (``sum |x|^2 ==
sum |k|^2``). Leading axes (slices, batch, channels) are transformed independently. Single precision
stays single precision: float32/complex64 in -> complex64 out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.fft as sfft

if TYPE_CHECKING:  # torch is imported lazily so numpy-only stages (mask, shard) start fast
    import torch

_AXES = (-2, -1)


def _checkerboards(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(pre, post) float32 (H, W) sign patterns for even H, W: pre = (-1)^(n+m), post =
    (-1)^(n+m-H/2-W/2)."""
    pre = np.where((np.add.outer(np.arange(h), np.arange(w)) % 2) == 0, 1.0, -1.0).astype(
        np.float32
    )
    post = pre if ((h // 2 + w // 2) % 2 == 0) else -pre
    return pre, post


def _centred(x: np.ndarray, inverse: bool, overwrite_x: bool = False) -> np.ndarray:
    """Shared body of :func:`fft2c` / :func:`ifft2c`.

    For even H and W the shifts equal sign modulations (shift theorem), which avoid four full
    copies: ``fftshift(F(ifftshift(x))) = post * F(pre * x)`` with the checkerboards above (same for
    the inverse). The modulated input is written into one complex buffer that the FFT then
    transforms in place. Odd sizes fall back to explicit shifts.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"expected at least 2 dimensions (..., H, W), got shape {x.shape}")
    transform = sfft.ifft2 if inverse else sfft.fft2
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        shifted = sfft.ifftshift(x, axes=_AXES)
        return sfft.fftshift(transform(shifted, axes=_AXES, norm="ortho", workers=-1), axes=_AXES)
    single = x.dtype in (np.float32, np.complex64)
    ctype = np.complex64 if single else np.complex128
    pre, post = _checkerboards(h, w)
    if not single:
        pre, post = pre.astype(np.float64), post.astype(np.float64)
    if overwrite_x and x.dtype == ctype and x.flags.c_contiguous and x.flags.writeable:
        buf = x
        buf *= pre
    else:
        buf = np.empty(x.shape, dtype=ctype)
        if np.iscomplexobj(x):
            np.multiply(x, pre, out=buf)
        # real input: fill the real part directly (a casting ufunc loop is several times
        # slower)
        else:
            np.multiply(x, pre, out=buf.real, casting="unsafe")
            buf.imag = 0
    out = transform(buf, axes=_AXES, norm="ortho", workers=-1, overwrite_x=True)
    out *= post
    return out


def fft2c(x: np.ndarray, overwrite_x: bool = False) -> np.ndarray:
    """Centred orthonormal 2D FFT of image(s) ``x`` (..., H, W) -> k-space (..., H, W) complex.

    ``overwrite_x=True`` lets a C-contiguous complex ``x`` be used (and destroyed) as the work
    buffer.
    """
    return _centred(x, inverse=False, overwrite_x=overwrite_x)


def ifft2c(k: np.ndarray, overwrite_x: bool = False) -> np.ndarray:
    """Inverse of :func:`fft2c`: k-space (..., H, W) -> complex image(s) (..., H, W)."""
    return _centred(k, inverse=True, overwrite_x=overwrite_x)


def fft2c_torch(x: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`fft2c` over dims (-2, -1); differentiable; real input is promoted to
    complex."""
    import torch

    shifted = torch.fft.ifftshift(x, dim=_AXES)
    return torch.fft.fftshift(torch.fft.fft2(shifted, dim=_AXES, norm="ortho"), dim=_AXES)


def ifft2c_torch(k: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`ifft2c` over dims (-2, -1)."""
    import torch

    shifted = torch.fft.ifftshift(k, dim=_AXES)
    return torch.fft.fftshift(torch.fft.ifft2(shifted, dim=_AXES, norm="ortho"), dim=_AXES)


def zero_filled_magnitude(kspace: np.ndarray) -> np.ndarray:
    """Magnitude of the zero-filled reconstruction: ``abs(ifft2c(kspace))`` as float32 (..., H,
    W)."""
    return np.abs(ifft2c(kspace)).astype(np.float32, copy=False)


def zero_filled_magnitude_torch(kspace: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`zero_filled_magnitude`: complex tensor (..., H, W) -> float32
    magnitude."""
    import torch

    return ifft2c_torch(kspace).abs().to(torch.float32)
