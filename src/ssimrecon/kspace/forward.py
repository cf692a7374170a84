"""The forward models: what the simulated scanner measures of a scaled magnitude volume.

``preprocessing.forward_model`` (docs/definitions.md, "Forward models"):

* ``magnitude`` (the paper's): the k-space of the real magnitude image ``m`` (times the smooth
  phase of ``preprocessing.phase: smooth`` if asked). Its k-space is Hermitian symmetric.
* ``complex``: the complex reference ``x = m exp(i phi)``, ``phi`` = a smooth low-order
  background phase plus a B0-like off-resonance phase
  (:func:`ssimrecon.kspace.phase_model.complex_reference`), seeded per subject: a scanner's images
  are complex, and the phase removes the Hermitian redundancy.
* ``multicoil``: ``preprocessing.coils`` receive coils of that ``x``: coil k-space
  ``k_c = fft2c(S_c x) + n_c`` with birdcage sensitivities ``S_c`` normalised to
  ``sum_c |S_c|^2 = 1`` (:func:`ssimrecon.kspace.coils.birdcage_sensitivities`) and complex white
  Gaussian noise ``n_c`` at ``preprocessing.snr_db`` over the fully sampled volume
  (:func:`ssimrecon.kspace.coils.add_kspace_noise`); the target is the root-sum-of-squares of the
  fully sampled noisy coil images, ``sqrt(sum_c |ifft2c(k_c)|^2)``, as fastMRI's multicoil
  targets are. One mask samples every coil.

:func:`simulate` gives a volume's fully sampled acquisition as a shard stores it (the mask is
applied on reading); :func:`zero_filled_image` is the zero-filled complex image of undersampled
k-space (single coil: ``ifft2c``; multicoil: the SENSE combination with the stored
sensitivities), the image the network sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.coils import add_kspace_noise, birdcage_sensitivities, rss, sense_combine
from ssimrecon.kspace.effective import effective_acceleration
from ssimrecon.kspace.fft import fft2c, ifft2c
from ssimrecon.kspace.phase_model import b0_phase
from ssimrecon.kspace.preprocess import (
    FORWARD_MODELS,
    Preprocessing,
    phase_seed_for,
    simulate_kspace,
    smooth_phase,
)

__all__ = [
    "FORWARD_MODELS",
    "Acquisition",
    "effective_acceleration_of",
    "hermitian",
    "network_channels",
    "reference_phase",
    "simulate",
    "undersample",
    "zero_filled_image",
]

#: extra seed word of the k-space noise's random stream (beside the subject's phase seed)
NOISE_STREAM = 0x4E


def hermitian(forward_model: str) -> bool:
    """Whether the forward model's k-space is Hermitian symmetric (the real magnitude image's),
    so that a sampled point also gives its mirror (:mod:`ssimrecon.kspace.effective`)."""
    return forward_model == "magnitude"


def effective_acceleration_of(mask: np.ndarray, forward_model: str) -> float:
    """The acceleration a mask (H, W) gives data of ``forward_model``: ``H * W`` / the points its
    samples determine, mirrors included for Hermitian (magnitude) data
    (:func:`~ssimrecon.kspace.effective.effective_acceleration`), the nominal R otherwise."""
    return effective_acceleration(mask, hermitian(forward_model))


def network_channels(forward_model: str) -> int:
    """Channels of the network's input and output: 1 (the magnitude) or 2 (real, imaginary)."""
    if forward_model not in FORWARD_MODELS:
        raise SsimreconError(
            f"preprocessing.forward_model must be one of {FORWARD_MODELS}, got {forward_model!r}"
        )
    return 1 if forward_model == "magnitude" else 2


def reference_phase(
    shape: tuple[int, int, int], key: str, prep: Preprocessing
) -> np.ndarray | None:
    """The reference's phase (S, H, W) float32 radians, or None for real (magnitude) data.

    ``magnitude``: :func:`~ssimrecon.kspace.preprocess.smooth_phase` with ``phase: smooth``, else
    None; ``complex``/``multicoil``: the phase of
    :func:`~ssimrecon.kspace.phase_model.complex_reference`, ``smooth_phase + b0_phase``; both
    seeded by :func:`~ssimrecon.kspace.preprocess.phase_seed_for` (``key``: the subject id, or
    a file name in ``reconstruct``)."""
    seed = phase_seed_for(key, prep.phase_seed)
    if prep.forward_model == "magnitude":
        return smooth_phase(shape, seed) if prep.phase == "smooth" else None
    return smooth_phase(shape, seed) + b0_phase(shape, seed)


@dataclass(frozen=True)
class Acquisition:
    """A volume's fully sampled simulated acquisition (:func:`simulate`).

    ``target`` (S, H, W) float32: what reconstructions are scored against (the magnitude, or the
    RSS of the noisy coil images); ``phase`` (S, H, W) float32 radians or None (single coil: the
    phase of ``phase: smooth`` or of the complex reference; multicoil: None, it is in the coils);
    ``coil_kspace`` (S, C, H, W) complex64 and ``sensitivities`` (C, H, W) complex64 (multicoil
    only, else None)."""

    target: np.ndarray
    phase: np.ndarray | None
    coil_kspace: np.ndarray | None
    sensitivities: np.ndarray | None


def coil_noise_power(magnitude: np.ndarray, coils: int) -> float:
    """Mean ``|k|^2`` over every sample and coil of the noiseless coil k-space of ``magnitude``
    (S, H, W): by Parseval and ``sum_c |S_c|^2 = 1`` it is ``sum |x|^2 / (S C H W)``."""
    return float(np.sum(np.square(magnitude, dtype=np.float64)) / (magnitude.size * coils))


def simulate(magnitude: np.ndarray, prep: Preprocessing, key: str) -> Acquisition:
    """The fully sampled acquisition of the scaled magnitude volume ``magnitude`` (S, H, W) under
    ``prep.forward_model`` (module docstring), seeded by ``key`` (the subject id) and
    ``prep.phase_seed``. Deterministic: the same inputs give the same noise."""
    magnitude = np.asarray(magnitude, dtype=np.float32)
    if magnitude.ndim != 3:
        raise SsimreconError(f"magnitude must be (S, H, W), got shape {magnitude.shape}")
    phase = reference_phase(magnitude.shape, key, prep)
    if prep.forward_model != "multicoil":
        return Acquisition(magnitude, phase, None, None)
    s, h, w = magnitude.shape
    maps = birdcage_sensitivities((h, w), prep.coils)
    power = coil_noise_power(magnitude, prep.coils)
    if not power > 0:
        raise SsimreconError("multicoil: the volume has no signal to set the noise level from")
    rng = np.random.default_rng([*phase_seed_for(key, prep.phase_seed), NOISE_STREAM])
    coil_kspace = np.empty((s, prep.coils, h, w), dtype=np.complex64)
    target = np.empty((s, h, w), dtype=np.float32)
    for i in range(s):  # one slice at a time: no (S, C, H, W) temporaries
        assert phase is not None
        image = magnitude[i] * np.exp(1j * phase[i]).astype(np.complex64)
        clean = fft2c(maps * image[None])
        coil_kspace[i] = add_kspace_noise(clean, prep.snr_db, rng, signal_power=power)
        target[i] = rss(ifft2c(coil_kspace[i]), axis=0)
    # the phase is in the coil k-space; stored apart it would cost another float32 volume
    return Acquisition(target, None, coil_kspace, maps)


def undersample(acquisition: Acquisition, mask: np.ndarray) -> np.ndarray:
    """The undersampled k-space of ``acquisition`` under ``mask`` (H, W) bool, as a shard reader
    forms it: ``mask * fft2c(target * exp(i phase))`` (S, H, W), multicoil ``mask *
    coil_kspace`` (S, C, H, W), complex64."""
    if acquisition.coil_kspace is None:
        return simulate_kspace(acquisition.target, mask, acquisition.phase)
    return (acquisition.coil_kspace * np.asarray(mask, dtype=np.float32)).astype(np.complex64)


def zero_filled_image(kspace: np.ndarray, sensitivities: np.ndarray | None) -> np.ndarray:
    """The zero-filled complex image (..., H, W) complex64 of undersampled k-space: ``ifft2c`` of
    single-coil ``kspace`` (..., H, W) (``sensitivities`` None), or the SENSE combination
    ``sum_c conj(S_c) ifft2c(k_c) / sum_c |S_c|^2`` of coil k-space (..., C, H, W) with
    ``sensitivities`` (C, H, W)."""
    image = ifft2c(np.asarray(kspace))
    if sensitivities is None:
        return image.astype(np.complex64, copy=False)
    return sense_combine(image, sensitivities)
