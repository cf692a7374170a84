"""Simulated receive coils, coil combination, sensitivity estimation and k-space noise.

Conventions: coil arrays carry the coil axis third from last, ``(..., C, H, W)``; sensitivities are
dimensionless complex64 maps ``(C, H, W)`` (or broadcastable to the coil images); k-space follows
``fft.py`` (centred, orthonormal, DC at ``(H // 2, W // 2)``). A coil image is ``S_c * x`` and its
k-space ``fft2c(S_c * x)``. Single precision is kept: results are float32/complex64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.fft import ifft2c
from ssimrecon.kspace.mask import center_region

#: pixels whose sum_c |S_c|^2 is at or below this are combined to 0 (maps are ~1 where they matter)
COMBINE_EPS = 1e-8
#: relative floor of the low-resolution RSS below which :func:`estimate_sensitivities` gives 0
ESTIMATE_EPS = 1e-6


def birdcage_sensitivities(
    shape: Sequence[int], n_coils: int, relative_radius: float = 1.5, normalize: bool = True
) -> np.ndarray:
    """Birdcage receive sensitivities (C, H, W) complex64, the model of sigpy's ``birdcage_maps``.

    Pixel coordinates are normalised to the half field of view, ``y = (row - H/2) / (H/2)`` and
    ``x = (col - W/2) / (W/2)`` (so the frame spans [-1, 1)); coil c sits on the circle of radius
    ``relative_radius`` (same units) at angle ``theta_c = 2 pi c / C``, i.e. at
    ``(x_c, y_c) = relative_radius * (cos theta_c, sin theta_c)``. With ``(dx, dy) = (x - x_c,
    y - y_c)`` its sensitivity is ``exp(i * (atan2(dx, -dy) - theta_c)) / hypot(dx, dy)``: magnitude
    falling off as 1/distance, phase the direction from the coil plus its angular position (sigpy's
    sign). ``normalize=True`` divides every coil by the root-sum-of-squares over coils, so that
    ``sum_c |S_c|^2 = 1`` at every pixel.
    """
    if len(shape) != 2 or min(int(s) for s in shape) < 1:
        raise SsimreconError(f"shape must be two positive integers (H, W), got {tuple(shape)}")
    if int(n_coils) != n_coils or n_coils < 1:
        raise SsimreconError(f"n_coils must be an integer >= 1, got {n_coils}")
    if not np.isfinite(relative_radius) or relative_radius <= 0:
        raise SsimreconError(f"relative_radius must be a number > 0, got {relative_radius}")
    h, w = int(shape[0]), int(shape[1])
    theta = 2 * np.pi * np.arange(int(n_coils)) / int(n_coils)
    y = (np.arange(h) - h / 2.0) / (h / 2.0)
    x = (np.arange(w) - w / 2.0) / (w / 2.0)
    dy = y[None, :, None] - relative_radius * np.sin(theta)[:, None, None]
    dx = x[None, None, :] - relative_radius * np.cos(theta)[:, None, None]
    dist = np.hypot(dx, dy)
    if dist.min() < 1e-6:
        raise SsimreconError(
            f"relative_radius={relative_radius} puts a coil on a pixel; use a radius > sqrt(2)"
        )
    maps = np.exp(1j * (np.arctan2(dx, -dy) - theta[:, None, None])) / dist
    if normalize:
        maps /= np.sqrt(np.sum(np.abs(maps) ** 2, axis=0))
    return maps.astype(np.complex64)


def rss(coil_images: np.ndarray, axis: int = -3) -> np.ndarray:
    """Root-sum-of-squares ``sqrt(sum_c |x_c|^2)`` over the coil ``axis``, float32."""
    x = np.asarray(coil_images)
    return np.sqrt(np.sum(np.abs(x) ** 2, axis=axis, dtype=np.float64)).astype(np.float32)


def sense_combine(coil_images: np.ndarray, sensitivities: np.ndarray) -> np.ndarray:
    """Pixelwise SENSE combination ``sum_c conj(S_c) x_c / sum_c |S_c|^2`` (..., H, W) complex64.

    ``coil_images`` (..., C, H, W) and ``sensitivities`` (C, H, W) or of the same shape; pixels
    where ``sum_c |S_c|^2 <= COMBINE_EPS`` (no coil sees them) are 0.
    """
    x, s = np.asarray(coil_images), np.asarray(sensitivities)
    if x.ndim < 3 or s.ndim < 3 or x.shape[-3:] != s.shape[-3:]:
        raise SsimreconError(
            f"sensitivities {s.shape} do not match the coil images {x.shape} in (C, H, W)"
        )
    num = np.sum(np.conj(s) * x, axis=-3)
    den = np.sum(np.abs(s) ** 2, axis=-3)
    seen = den > COMBINE_EPS
    out = np.where(seen, num / np.where(seen, den, 1), 0)
    return out.astype(np.complex64)


def _hann(n: int) -> np.ndarray:
    """Hann window of n taps without its zero end points (``hanning(n + 2)[1:-1]``), float64."""
    return np.hanning(n + 2)[1:-1]


def estimate_sensitivities(coil_kspace: np.ndarray, center_size: int) -> np.ndarray:
    """A simple low-resolution sensitivity estimate (not ESPIRiT) from the calibration centre.

    ``coil_kspace`` (C, H, W) or (S, C, H, W) complex: only its central ``center_size`` square
    (:func:`~ssimrecon.kspace.mask.center_region`, which must be fully sampled) is used, tapered by
    a separable Hann window; its inverse FFT gives low-resolution coil images ``l_c``, and the
    estimate is ``l_c / rss(l)`` where ``rss(l) > ESTIMATE_EPS * max rss(l)`` (per slice), else 0.
    Same shape as the input, complex64, ``sum_c |S_c|^2 = 1`` wherever nonzero. The estimate
    carries the object's low-resolution phase, so a SENSE combination with it returns the image up
    to that smooth phase; it is biased near sharp edges of the object, where the low-pass of
    ``S_c x`` is not ``S_c`` times the low-pass of ``x``.
    """
    k = np.asarray(coil_kspace)
    if k.ndim not in (3, 4):
        raise SsimreconError(f"coil_kspace must be (C, H, W) or (S, C, H, W), got {k.shape}")
    if int(center_size) != center_size or center_size < 1:
        raise SsimreconError(f"center_size must be an integer >= 1, got {center_size}")
    rows, cols = center_region(k.shape[-2:], int(center_size))
    taper = np.outer(_hann(rows.stop - rows.start), _hann(cols.stop - cols.start))
    calib = np.zeros(k.shape, dtype=np.complex64)
    calib[..., rows, cols] = k[..., rows, cols] * taper.astype(np.float32)
    low = ifft2c(calib)
    norm = rss(low, axis=-3)[..., None, :, :]
    floor = ESTIMATE_EPS * norm.max(axis=(-2, -1), keepdims=True)
    ok = norm > floor
    return np.where(ok, low / np.where(ok, norm, 1), 0).astype(np.complex64)


def add_kspace_noise(
    kspace: np.ndarray,
    snr_db: float,
    rng: np.random.Generator,
    signal_power: float | None = None,
) -> np.ndarray:
    """``kspace`` plus complex white Gaussian noise, complex64 of the same shape.

    SNR definition: ``snr_db = 10 log10(P / sigma^2)``, with ``P`` = ``signal_power`` or, if None,
    the mean ``|k|^2`` over every sample (all coils) of the given noiseless ``kspace``, and
    ``sigma^2`` the noise variance per complex sample, ``E|n|^2``, split equally between the real
    and imaginary parts (each N(0, sigma^2 / 2), independent). One ``sigma`` for every coil and
    sample: uncorrelated coils of equal noise. Noise is added to every sample; to simulate an
    undersampled scan add it to the fully sampled k-space and mask afterwards (or pass the fully
    sampled ``P`` as ``signal_power``), so that the noise level does not depend on the mask.
    """
    k = np.asarray(kspace)
    if not np.isfinite(snr_db):
        raise SsimreconError(f"snr_db must be a finite number, got {snr_db}")
    power = (
        float(np.mean(np.abs(k) ** 2, dtype=np.float64)) if signal_power is None else signal_power
    )
    if not np.isfinite(power) or power <= 0:
        raise SsimreconError(f"signal_power (default: mean |kspace|^2) must be > 0, got {power}")
    sigma = np.float32(np.sqrt(power / 10.0 ** (snr_db / 10.0) / 2.0))
    noise = np.empty(k.shape, dtype=np.complex64)
    noise.real = rng.standard_normal(k.shape, dtype=np.float32) * sigma
    noise.imag = rng.standard_normal(k.shape, dtype=np.float32) * sigma
    noise += k
    return noise


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """``10 log10(mean |clean|^2 / mean |noisy - clean|^2)`` in dB (the definition of
    :func:`add_kspace_noise`)."""
    clean, noisy = np.asarray(clean), np.asarray(noisy)
    if clean.shape != noisy.shape:
        raise SsimreconError(f"noisy shape {noisy.shape} does not match clean {clean.shape}")
    signal = np.mean(np.abs(clean.astype(np.complex128)) ** 2)
    noise = np.mean(np.abs(noisy.astype(np.complex128) - clean) ** 2)
    if noise == 0:
        return float("inf")
    return float(10.0 * np.log10(signal / noise))
