"""2D variable-density random undersampling masks over the phase-encode plane.

Conventions: a mask is a bool array (H, W) in centred k-space (DC at ``(H // 2, W // 2)``, see
``fft.py``). It has a fully sampled central square of side ``center_size`` (clipped to the plane)
and, outside it, points drawn without replacement with weights ``(1 - r) ** power``, where ``r`` is
the radius normalised so that the corners of the plane have ``r = 1``. The total is exactly
``round(H * W / acceleration)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ssimrecon.atomic import atomic_output
from ssimrecon.errors import SsimreconError

#: keys stored next to the mask in ``mask.npz`` (all required by :func:`load_mask`)
META_KEYS = (
    "shape",
    "acceleration",
    "seed",
    "center_size",
    "power",
    "n_samples",
    "achieved_acceleration",
)


def normalized_radius(shape: tuple[int, int]) -> np.ndarray:
    """Radius (H, W) float64 from the DC sample ``(H//2, W//2)``, scaled so the farthest corner is
    1."""
    h, w = shape
    dy = (np.arange(h) - h // 2) / max(h / 2, 1)
    dx = (np.arange(w) - w // 2) / max(w / 2, 1)
    r = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
    return r / r.max() if r.max() > 0 else r


def center_region(shape: tuple[int, int], center_size: int) -> tuple[slice, slice]:
    """Index of the fully sampled central square, side ``min(center_size, H, W)``, around the DC
    sample."""
    h, w = shape
    c = max(0, min(int(center_size), h, w))
    y0 = min(max(h // 2 - c // 2, 0), h - c)
    x0 = min(max(w // 2 - c // 2, 0), w - c)
    return slice(y0, y0 + c), slice(x0, x0 + c)


def target_samples(shape: tuple[int, int], acceleration: float) -> int:
    """Exact number of samples of a mask: ``round(H * W / acceleration)`` (at least 1)."""
    return max(1, int(round(shape[0] * shape[1] / float(acceleration))))


def _check_args(
    shape: tuple[int, int], acceleration: float, center_size: int, power: float
) -> tuple[int, int]:
    if len(shape) != 2 or min(int(s) for s in shape) < 1:
        raise SsimreconError(f"mask.shape must be two positive integers, got {tuple(shape)}")
    if not np.isfinite(acceleration) or acceleration < 1:
        raise SsimreconError(f"mask.acceleration must be a number >= 1, got {acceleration}")
    if center_size < 0:
        raise SsimreconError(f"mask.center_size must be >= 0, got {center_size}")
    if not np.isfinite(power) or power < 0:
        raise SsimreconError(f"mask.power must be >= 0, got {power}")
    return int(shape[0]), int(shape[1])


def variable_density_mask(
    shape: tuple[int, int], acceleration: float, center_size: int, seed: int, power: float = 2.0
) -> np.ndarray:
    """Seeded variable-density mask (H, W) bool with exactly ``round(H*W/acceleration)`` samples.

    Raises SsimreconError naming ``mask.center_size`` if the fully sampled centre alone exceeds the
    budget.
    """
    shape = _check_args(shape, acceleration, center_size, power)
    n_total = target_samples(shape, acceleration)
    mask = np.zeros(shape, dtype=bool)
    mask[center_region(shape, center_size)] = True
    n_center = int(mask.sum())
    if n_center > n_total:
        raise SsimreconError(
            f"mask.center_size={center_size} gives {n_center} fully sampled points, more than the "
            f"{n_total} samples allowed at acceleration {acceleration} on a {shape[0]}x{shape[1]} "
            "plane; "
            "lower mask.center_size or the acceleration"
        )
    n_rest = n_total - n_center
    if n_rest == 0:
        return mask
    candidates = np.flatnonzero(~mask.ravel())
    weights = (1.0 - normalized_radius(shape)).ravel()[candidates] ** power
    weights = np.maximum(
        weights, 1e-12
    )  # the corner itself keeps a tiny chance, so any R <= 1 is feasible
    rng = np.random.default_rng(seed)
    chosen = rng.choice(candidates, size=n_rest, replace=False, p=weights / weights.sum())
    mask.ravel()[chosen] = True
    return mask


def design_density(
    shape: tuple[int, int], acceleration: float, center_size: int, power: float = 2.0
) -> np.ndarray:
    """Sampling probability per point (H, W) float64 that the design aims at: 1 in the centre and
    ``min(1, c * (1 - r) ** power)`` outside, with ``c`` set so the probabilities sum to the sample
    budget."""
    shape = _check_args(shape, acceleration, center_size, power)
    density = np.zeros(shape)
    density[center_region(shape, center_size)] = 1.0
    outside = density == 0
    n_rest = target_samples(shape, acceleration) - int(density.sum())
    if n_rest <= 0:
        return density
    w = np.maximum((1.0 - normalized_radius(shape))[outside] ** power, 1e-12)
    lo, hi = 0.0, n_rest / w.min()
    for _ in range(100):  # bisection on the scale c: sum(min(1, c w)) is increasing in c
        mid = 0.5 * (lo + hi)
        if np.minimum(1.0, mid * w).sum() < n_rest:
            lo = mid
        else:
            hi = mid
    density[outside] = np.minimum(1.0, hi * w)
    return density


def achieved_acceleration(mask: np.ndarray) -> float:
    """``H * W / number of sampled points`` of a bool mask (H, W)."""
    n = int(np.count_nonzero(mask))
    if n == 0:
        raise SsimreconError("mask has no sampled points")
    return float(mask.size / n)


def save_mask(
    path: str | os.PathLike,
    mask: np.ndarray,
    *,
    acceleration: float,
    seed: int,
    center_size: int,
    power: float,
) -> None:
    """Write ``mask`` and its metadata to ``path`` (.npz) atomically (temp file in the same dir +
    rename)."""
    mask = np.asarray(mask, dtype=bool)
    meta: dict[str, Any] = {
        "shape": np.asarray(mask.shape, dtype=np.int64),
        "acceleration": np.float64(acceleration),
        "seed": np.int64(seed),
        "center_size": np.int64(center_size),
        "power": np.float64(power),
        "n_samples": np.int64(np.count_nonzero(mask)),
        "achieved_acceleration": np.float64(achieved_acceleration(mask)),
    }
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, mask=mask, **meta)


def load_mask(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a mask written by :func:`save_mask`: (mask bool (H, W), metadata dict of plain Python
    values)."""
    path = Path(path)
    if not path.is_file():
        raise SsimreconError(f"mask file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("mask", *META_KEYS) if k not in data.files]
            if missing:
                raise SsimreconError(f"mask file {path} lacks key(s) {', '.join(missing)}")
            mask = np.asarray(data["mask"], dtype=bool)
            raw = {k: data[k] for k in META_KEYS}
    except SsimreconError:
        raise
    except Exception as exc:  # zipfile/numpy raise many types for a corrupt file
        raise SsimreconError(f"mask file {path} is not a readable .npz: {exc}") from exc
    if mask.ndim != 2:
        raise SsimreconError(f"mask file {path}: mask must be 2D, got shape {mask.shape}")
    meta: dict[str, Any] = {
        "shape": tuple(int(s) for s in raw["shape"]),
        "acceleration": float(raw["acceleration"]),
        "seed": int(raw["seed"]),
        "center_size": int(raw["center_size"]),
        "power": float(raw["power"]),
        "n_samples": int(raw["n_samples"]),
        "achieved_acceleration": float(raw["achieved_acceleration"]),
    }
    return mask, meta
