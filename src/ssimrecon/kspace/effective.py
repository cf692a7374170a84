"""Effective acceleration of a mask once Hermitian symmetry is counted.

The k-space of a real image (a magnitude reference) satisfies ``k[mirror] == conj(k)``, so a
sampled point also gives its mirror (docs/definitions.md, "k-space"). In the centred layout of
``fft.py`` (``fftshift(fft2(ifftshift(x)))``) index ``r`` of an axis of length ``N`` holds the
frequency ``r - N // 2``; its mirror, frequency ``N // 2 - r`` taken modulo ``N``, sits at index
``(2 * (N // 2) - r) % N``: ``(N - r) % N`` for even N (row 0, the Nyquist frequency -N/2, and the
DC row N/2 are their own mirrors), ``N - 1 - r`` for odd N (only the DC row is its own mirror).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ssimrecon.errors import SsimreconError


def _mirror_1d(n: int) -> np.ndarray:
    """Mirror index (n,) intp along one centred axis of length n."""
    return (2 * (n // 2) - np.arange(n)) % n


def mirror_index(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols), each (H, W) intp: ``k[..., rows, cols]`` is the Hermitian mirror of every
    sample of a centred k-space (H, W) (formula in the module docstring)."""
    if len(shape) != 2 or min(int(s) for s in shape) < 1:
        raise SsimreconError(f"shape must be two positive integers (H, W), got {tuple(shape)}")
    h, w = int(shape[0]), int(shape[1])
    rows = np.broadcast_to(_mirror_1d(h)[:, None], (h, w)).copy()
    cols = np.broadcast_to(_mirror_1d(w)[None, :], (h, w)).copy()
    return rows, cols


def _as_mask(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise SsimreconError(f"mask must be 2D (H, W), got shape {m.shape}")
    return m.astype(bool)


def covered_by_mirrors(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: points sampled, or whose mirror is sampled (``mask | mask[mirror]``)."""
    m = _as_mask(mask)
    rows, cols = mirror_index(m.shape)
    return m | m[rows, cols]


def effective_acceleration(mask: np.ndarray, hermitian: bool) -> float:
    """``H * W`` / the number of points a mask (H, W) determines.

    ``hermitian=False``: the sampled points (the nominal achieved R; use it for complex or
    multicoil data). ``hermitian=True``: the points of :func:`covered_by_mirrors` (use it for
    real, magnitude-only data, whose mirror samples are redundant).
    """
    m = _as_mask(mask)
    n = int(np.count_nonzero(covered_by_mirrors(m) if hermitian else m))
    if n == 0:
        raise SsimreconError("mask has no sampled points")
    return float(m.size / n)


def hermitian_fill(kspace: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Undersampled ``kspace`` (..., H, W) with every unsampled point whose mirror is sampled set to
    the conjugate of that mirror; other unsampled points are 0. Complex, single precision kept.

    Exact for the k-space of a real image; for a complex image it inserts wrong values (the leak a
    magnitude-only benchmark allows, not a reconstruction method).
    """
    m = _as_mask(mask)
    k = np.asarray(kspace)
    if k.shape[-2:] != m.shape:
        raise SsimreconError(f"mask shape {m.shape} does not match the k-space {k.shape[-2:]}")
    rows, cols = mirror_index(m.shape)
    fill = ~m & m[rows, cols]
    out = np.where(m, k, np.where(fill, np.conj(k[..., rows, cols]), 0))
    return out.astype(np.result_type(k.dtype, np.complex64), copy=False)
