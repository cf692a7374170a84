"""mask.png: the sampling pattern, its radial density against the design, and its point spread
function."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # Agg canvas, no global backend state

from ssimrecon.atomic import atomic_output
from ssimrecon.kspace.effective import covered_by_mirrors, effective_acceleration
from ssimrecon.kspace.fft import ifft2c
from ssimrecon.kspace.mask import achieved_acceleration, design_density, normalized_radius


def radial_profile(values: np.ndarray, n_bins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` (H, W) in ``n_bins`` equal-width rings of the normalised radius (0..1).

    Returns (bin centres (n_bins,), means (n_bins,)); empty rings give NaN.
    """
    r = normalized_radius(values.shape).ravel()
    idx = np.minimum((r * n_bins).astype(int), n_bins - 1)
    sums = np.bincount(idx, weights=np.asarray(values, dtype=np.float64).ravel(), minlength=n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    centres = (np.arange(n_bins) + 0.5) / n_bins
    return centres, np.where(counts > 0, means, np.nan)


def plot_mask(mask: np.ndarray, meta: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a 3-panel PNG: mask, empirical vs design density over radius, log PSF; title: the
    nominal R (samples; what complex and multicoil data get) and the effective R of magnitude
    data (the points the samples determine once Hermitian mirrors count,
    :func:`~ssimrecon.kspace.effective.effective_acceleration`)."""
    mask = np.asarray(mask, dtype=bool)
    n = int(mask.sum())
    fig = Figure(figsize=(13, 4.4), dpi=110)
    ax_mask, ax_density, ax_psf = fig.subplots(1, 3)

    ax_mask.imshow(mask, cmap="gray", interpolation="nearest")
    ax_mask.set_title(f"mask {mask.shape[0]}x{mask.shape[1]} (centred k-space)")
    ax_mask.set_xlabel("k_x index")
    ax_mask.set_ylabel("k_y index")

    centres, empirical = radial_profile(mask.astype(np.float64))
    ax_density.plot(centres, empirical, "o-", ms=3, label="empirical (binned)")
    if {"acceleration", "center_size", "power"} <= meta.keys():
        design = design_density(
            mask.shape, meta["acceleration"], meta["center_size"], meta["power"]
        )
        ax_density.plot(*radial_profile(design), "-", lw=2, alpha=0.8, label="design")
    ax_density.set_xlabel("normalised k-space radius r (corner = 1)")
    ax_density.set_ylabel("sampling probability")
    ax_density.set_ylim(0, 1.05)
    ax_density.set_title("sampling density vs radius")
    ax_density.legend()

    psf = np.abs(ifft2c(mask.astype(np.complex64)))
    psf /= max(float(psf.max()), 1e-12)
    im = ax_psf.imshow(20 * np.log10(np.maximum(psf, 1e-4)), cmap="magma", vmin=-60, vmax=0)
    ax_psf.set_title("point spread function (dB)")
    ax_psf.set_axis_off()
    fig.colorbar(im, ax=ax_psf, fraction=0.046, pad=0.04)

    details = ", ".join(
        f"{k}={meta[k]}" for k in ("acceleration", "center_size", "power", "seed") if k in meta
    )
    covered = int(covered_by_mirrors(mask).sum())
    fig.suptitle(
        f"nominal R = {achieved_acceleration(mask):.3f}, {n} of {mask.size} samples "
        f"(complex, multicoil data); effective R = {effective_acceleration(mask, True):.3f} on "
        f"magnitude data ({covered} points once Hermitian mirrors count)\n({details})"
    )
    fig.tight_layout()
    with atomic_output(
        path, suffix=Path(path).suffix or ".png"
    ) as tmp:  # matplotlib picks the format from it
        fig.savefig(tmp)
