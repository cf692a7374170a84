"""A complex-valued reference from a magnitude volume: the phase a real acquisition carries.

A magnitude-only reference is real, so its k-space is Hermitian symmetric and half of it is
redundant (docs/definitions.md, "k-space"); real MR images are complex. :func:`complex_reference`
gives the magnitude a simulated phase so that the k-space loses that symmetry, as a scanner's does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.preprocess import smooth_phase

#: extra seed word that separates the B0 field's random stream from :func:`smooth_phase`'s
_B0_STREAM = 0xB0


def _seed_words(seed: int | Sequence[int]) -> list[int]:
    """``seed`` (an int or a sequence of ints, as :func:`smooth_phase` takes) as a list of ints."""
    return [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]


def b0_phase(shape: Sequence[int], seed: int | Sequence[int]) -> np.ndarray:
    """A seeded B0-like off-resonance phase (S, H, W) float32 radians.

    ``phase = A * exp(-(|r - r0|^2 / (2 w^2) + (z - z0)^2 / (2 wz^2))) + q . (y^2, x^2, x y)``,
    with in-plane coordinates r = (y, x) in [-1, 1) across the frame and z in [0, 1) across the
    slices: an off-centre bump (peak ``A`` in [pi, 2 pi] rad at ``r0`` within 0.6 of the centre, in
    the slice ``z0``; widths ``w`` in [0.15, 0.35], ``wz`` in [0.2, 0.5]), like the field near air
    cavities, plus a quadratic shim residual (each coefficient of ``q`` in [-pi/2, pi/2] rad).
    """
    s, h, w = (int(v) for v in shape)
    rng = np.random.default_rng([*_seed_words(seed), _B0_STREAM])
    y = ((np.arange(h) - h / 2.0) / (h / 2.0))[:, None]
    x = ((np.arange(w) - w / 2.0) / (w / 2.0))[None, :]
    z = (np.arange(s) / max(s, 1))[:, None, None]
    amp = rng.uniform(np.pi, 2 * np.pi)
    y0, x0 = rng.uniform(-0.6, 0.6, size=2)
    width, width_z = rng.uniform(0.15, 0.35), rng.uniform(0.2, 0.5)
    z0 = rng.uniform(0, 1)
    qyy, qxx, qxy = rng.uniform(-np.pi / 2, np.pi / 2, size=3)
    bump = np.exp(-((y - y0) ** 2 + (x - x0) ** 2) / (2 * width**2))
    across = np.exp(-((z - z0) ** 2) / (2 * width_z**2))
    quadratic = qyy * y**2 + qxx * x**2 + qxy * x * y
    return (amp * across * bump + quadratic).astype(np.float32)


def complex_reference(magnitude: np.ndarray, seed: int | Sequence[int]) -> np.ndarray:
    """``magnitude * exp(i * phase)`` (S, H, W) complex64, deterministic in ``seed``.

    ``magnitude`` (S, H, W) real, >= 0 (scaled reference). ``phase`` = the smooth low-order
    background phase of :func:`~ssimrecon.kspace.preprocess.smooth_phase` (coil/transmit phase,
    peak pi) plus :func:`b0_phase` (off-resonance). The phase breaks the Hermitian symmetry of the
    k-space, so no half of it is redundant, as in a real acquisition; the magnitude is unchanged.
    """
    mag = np.asarray(magnitude, dtype=np.float32)
    if mag.ndim != 3:
        raise SsimreconError(f"magnitude must be (S, H, W), got shape {mag.shape}")
    phase = smooth_phase(mag.shape, seed) + b0_phase(mag.shape, seed)
    out = np.empty(mag.shape, dtype=np.complex64)
    out.real = mag * np.cos(phase)
    out.imag = mag * np.sin(phase)
    return out
