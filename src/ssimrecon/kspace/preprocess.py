"""From a NIfTI volume to scaled 2D slices and their simulated k-space, and back to the volume grid.

Conventions: volumes are reoriented to RAS with ``nibabel.as_closest_canonical``. The readout axis
(fully sampled, ``Preprocessing.readout_axis`` of the RAS array) is moved to the front, so slices
are (S, H, W) with H, W the two phase-encode axes in RAS order (readout 2 -> axial slices (R, A):
for IXI T1, 150 L-R partitions x 256 A-P). In-plane the slices are block-mean downsampled by an
integer factor, then centre cropped/padded to ``image_size`` (pad/crop offset ``abs(n - m) // 2``
before); the geometry rule (docs/definitions.md) is to pad no more than up to the next multiple of
2**depth of the U-Net (150 -> 160). k-space follows ``fft.py``.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import nibabel as nib
import numpy as np

from ssimrecon.config.sections import settings_from
from ssimrecon.errors import SsimreconError, VolumeError
from ssimrecon.kspace.fft import fft2c

PHASE_MODES = ("none", "smooth")
#: ``preprocessing.forward_model``: what the simulated scanner measures (docs/definitions.md,
#: "Forward models"): the k-space of the real magnitude image (the paper's), of a complex image
#: (magnitude x a smooth and a B0-like phase), or of ``coils`` receive coils with noise
FORWARD_MODELS = ("magnitude", "complex", "multicoil")
#: the phase seed of the shards and model bundles written before ``phase_seed`` was recorded
UNRECORDED_PHASE_SEED = 0
#: what a record written before the forward models existed was simulated with (``coils`` and
#: ``snr_db`` are the schema's defaults; they mean nothing for magnitude data)
UNRECORDED_FORWARD_MODEL = {"forward_model": "magnitude", "coils": 8, "snr_db": 30.0}


@dataclass(frozen=True)
class Preprocessing:
    """How a volume becomes slices and their simulated acquisition; stored as JSON in every shard
    (attr ``preprocessing``) and model bundle.

    Every field is required: the ``preprocessing`` section of the workflow's config schema holds
    the only defaults. ``phase_seed`` seeds the smooth phase (``phase: smooth``) of each subject
    with its id (:func:`phase_seed_for`), and with ``forward_model`` complex or multicoil its
    reference phase and its noise. ``forward_model`` (:data:`FORWARD_MODELS`) is the simulated
    acquisition; ``coils`` (receive coils) and ``snr_db`` (k-space SNR in dB,
    :func:`ssimrecon.kspace.coils.add_kspace_noise`) are used by ``multicoil`` only.
    ``phase: smooth`` is the older way to break the Hermitian symmetry of magnitude data;
    ``forward_model: complex`` supersedes it, and the two together are refused."""

    readout_axis: int
    image_size: tuple[int, int]
    downsample: int
    slice_stride: int
    scale_percentile: float
    phase: str
    phase_seed: int
    forward_model: str
    coils: int
    snr_db: float

    def __post_init__(self) -> None:
        size = tuple(int(s) for s in self.image_size)
        object.__setattr__(self, "image_size", size)
        if self.readout_axis not in (0, 1, 2):
            raise SsimreconError(
                f"preprocessing.readout_axis must be 0, 1 or 2, got {self.readout_axis}"
            )
        if len(size) != 2 or min(size) < 1:
            raise SsimreconError(
                f"preprocessing.image_size must be two positive integers, got {self.image_size}"
            )
        if int(self.downsample) != self.downsample or self.downsample < 1:
            raise SsimreconError(
                f"preprocessing.downsample must be an integer >= 1, got {self.downsample}"
            )
        if int(self.slice_stride) != self.slice_stride or self.slice_stride < 1:
            raise SsimreconError(
                f"preprocessing.slice_stride must be an integer >= 1, got {self.slice_stride}"
            )
        if not 0 < float(self.scale_percentile) <= 100:
            raise SsimreconError(
                f"preprocessing.scale_percentile must be in (0, 100], got {self.scale_percentile}"
            )
        if self.phase not in PHASE_MODES:
            raise SsimreconError(
                f"preprocessing.phase must be one of {PHASE_MODES}, got {self.phase!r}"
            )
        if self.forward_model not in FORWARD_MODELS:
            raise SsimreconError(
                f"preprocessing.forward_model must be one of {FORWARD_MODELS}, got "
                f"{self.forward_model!r}"
            )
        if self.forward_model != "magnitude" and self.phase != "none":
            raise SsimreconError(
                f"preprocessing.phase: {self.phase!r} contradicts preprocessing.forward_model: "
                f"{self.forward_model!r}, which simulates its own phase (set phase: none)"
            )
        if isinstance(self.coils, bool) or int(self.coils) != self.coils or self.coils < 1:
            raise SsimreconError(f"preprocessing.coils must be an integer >= 1, got {self.coils}")
        object.__setattr__(self, "coils", int(self.coils))
        if not np.isfinite(float(self.snr_db)):
            raise SsimreconError(f"preprocessing.snr_db must be a finite number, got {self.snr_db}")
        object.__setattr__(self, "snr_db", float(self.snr_db))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (image_size as a list), JSON-ready."""
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict` for a stored record (:func:`recorded`, then
        :func:`~ssimrecon.config.sections.settings_from`): a missing or unknown key raises
        ConfigError naming ``preprocessing.<key>``."""
        return settings_from(cls, recorded(data), "preprocessing")

    def to_json(self) -> str:
        """Canonical JSON (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SsimreconError(f"preprocessing is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SsimreconError(f"preprocessing JSON must be an object, got {type(data).__name__}")
        return cls.from_dict(data)


def recorded(data: Mapping[str, Any]) -> dict[str, Any]:
    """A stored preprocessing record (a shard's attribute, a model bundle's entry) with every
    field: a record written before ``phase_seed`` was recorded was simulated with
    :data:`UNRECORDED_PHASE_SEED`, one written before the forward models existed with
    :data:`UNRECORDED_FORWARD_MODEL` (magnitude data)."""
    return {"phase_seed": UNRECORDED_PHASE_SEED, **UNRECORDED_FORWARD_MODEL, **data}


def load_canonical(path: str | os.PathLike) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read a 3D NIfTI as float32 in RAS orientation; also return the original image (for its
    affine).

    A trailing singleton 4th dimension is dropped. Raises VolumeError naming the file if it is
    missing, unreadable or not 3D.
    """
    path = Path(path)
    if not path.is_file():
        raise VolumeError(f"volume {path} does not exist")
    try:
        img = nib.load(str(path))
        if len(img.shape) == 4 and img.shape[3] == 1:
            img = img.slicer[..., 0]
        if len(img.shape) != 3:
            raise VolumeError(f"volume {path} must be 3D, got shape {img.shape}")
        canonical = nib.as_closest_canonical(img)
        data = np.asanyarray(canonical.dataobj, dtype=np.float32)
    except VolumeError:
        raise
    except Exception as exc:  # nibabel, gzip, zlib and OS errors for truncated or foreign files
        raise VolumeError(f"volume {path} cannot be read: {type(exc).__name__}: {exc}") from exc
    if not np.all(np.isfinite(data)):
        raise VolumeError(f"volume {path} contains NaN or infinite values")
    return np.ascontiguousarray(data), img


def _fit(n: int, m: int) -> tuple[int, int, int]:
    """For centre crop/pad of length n to m: (offset, src_start, length) so out[offset:offset+L] =
    in[src:src+L]."""
    if m >= n:
        return (m - n) // 2, 0, n
    return 0, (n - m) // 2, m


def _crop_or_pad(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre crop/pad the last two axes of ``x`` (S, h, w) to ``size`` with zeros."""
    (oy, sy, ly), (ox, sx, lx) = _fit(x.shape[1], size[0]), _fit(x.shape[2], size[1])
    if (oy, sy, ly, ox, sx, lx) == (0, 0, size[0], 0, 0, size[1]):
        return np.ascontiguousarray(x)
    out = np.zeros((x.shape[0], *size), dtype=x.dtype)
    out[:, oy : oy + ly, ox : ox + lx] = x[:, sy : sy + ly, sx : sx + lx]
    return out


def _uncrop(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`_crop_or_pad`: map (S, H, W) back to (S, *size), zero where cropped
    away."""
    (oy, sy, ly), (ox, sx, lx) = _fit(size[0], x.shape[1]), _fit(size[1], x.shape[2])
    out = np.zeros((x.shape[0], *size), dtype=x.dtype)
    out[:, sy : sy + ly, sx : sx + lx] = x[:, oy : oy + ly, ox : ox + lx]
    return out


def volume_to_slices(volume_ras: np.ndarray, prep: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """RAS volume (X, Y, Z) -> (slices (S, H, W) float32, slice_index (S,) int32 along the readout
    axis)."""
    if volume_ras.ndim != 3:
        raise VolumeError(f"expected a 3D volume, got shape {volume_ras.shape}")
    moved = np.moveaxis(volume_ras, prep.readout_axis, 0)
    slice_index = np.arange(0, moved.shape[0], prep.slice_stride, dtype=np.int32)
    slices = moved[slice_index] if prep.slice_stride > 1 else moved
    d = prep.downsample
    if d > 1:
        s, h, w = slices.shape
        if h < d or w < d:
            raise VolumeError(f"downsample {d} is larger than the slice size {h}x{w}")
        blocks = slices[:, : h // d * d, : w // d * d].reshape(s, h // d, d, w // d, d)
        slices = blocks.mean(axis=(2, 4), dtype=np.float64)
    slices = _crop_or_pad(slices.astype(np.float32, copy=False), prep.image_size)
    if np.may_share_memory(slices, volume_ras):  # never hand out a view of the caller's volume
        slices = slices.copy()
    return slices, slice_index


def slices_to_volume(
    slices: np.ndarray, prep: Preprocessing, ras_shape: Sequence[int], slice_index: np.ndarray
) -> np.ndarray:
    """Inverse of :func:`volume_to_slices` onto the RAS grid ``ras_shape`` (float32).

    Cropped-away borders and slices not taken are zero; ``downsample > 1`` is undone by nearest
    upsampling.
    """
    ras_shape = tuple(int(s) for s in ras_shape)
    moved_shape = (ras_shape[prep.readout_axis],) + tuple(
        s for i, s in enumerate(ras_shape) if i != prep.readout_axis
    )
    _, h, w = moved_shape
    d = prep.downsample
    if slices.ndim != 3 or slices.shape[1:] != tuple(prep.image_size):
        raise VolumeError(
            f"slices must be (S, {prep.image_size[0]}, {prep.image_size[1]}), got {slices.shape}"
        )
    if len(slice_index) != slices.shape[0]:
        raise VolumeError(f"{slices.shape[0]} slices but {len(slice_index)} slice indices")
    small = _uncrop(np.asarray(slices, dtype=np.float32), (h // d, w // d))
    if d > 1:
        small = np.repeat(np.repeat(small, d, axis=1), d, axis=2)
    out = np.zeros(moved_shape, dtype=np.float32)
    out[np.asarray(slice_index), : small.shape[1], : small.shape[2]] = small
    return np.moveaxis(out, 0, prep.readout_axis)


def to_source_orientation(
    volume_ras: np.ndarray, source_img: nib.spatialimages.SpatialImage
) -> np.ndarray:
    """Undo ``as_closest_canonical``: RAS array -> array in the source's voxel order (save with its
    affine)."""
    src_ornt = nib.orientations.io_orientation(source_img.affine)
    ras_ornt = nib.orientations.axcodes2ornt(("R", "A", "S"))
    back = nib.orientations.ornt_transform(ras_ornt, src_ornt)
    return np.ascontiguousarray(nib.orientations.apply_orientation(volume_ras, back))


def robust_scale(volume: np.ndarray, percentile: float) -> float:
    """``percentile`` of the voxels > 0 (linear interpolation, as ``np.percentile``).

    Exact, but fast for the high percentiles used here: the answer is searched among the values
    above a threshold estimated on a strided subsample, falling back to the full set when that is
    not enough.
    """
    flat = np.asarray(volume).ravel()
    positive = flat > 0
    n = int(np.count_nonzero(positive))
    if n == 0:
        raise VolumeError("volume is empty: no voxel > 0 to compute the robust scale from")
    pos = (n - 1) * float(percentile) / 100.0  # rank (0-based, fractional) in ascending order
    lo_rank = int(np.floor(pos))
    frac = pos - lo_rank
    need_from_top = n - lo_rank  # values at ranks >= lo_rank
    if need_from_top < n // 4:
        sample = flat[:: max(1, flat.size // 200_000)]
        sample = sample[sample > 0]
        if sample.size:
            q = max(0.0, 100.0 * (1.0 - 2.0 * need_from_top / n) - 1.0)
            threshold = float(np.percentile(sample, q))
            top = flat[flat > threshold]
            if top.size >= need_from_top + 1 and threshold > 0:
                k = top.size - need_from_top  # rank of lo_rank within `top`
                part = np.partition(top, [k, min(k + 1, top.size - 1)])
                lo, hi = float(part[k]), float(part[min(k + 1, top.size - 1)])
                return lo + frac * (hi - lo)
    return float(np.percentile(flat[positive], percentile))


def input_scale(zero_filled: np.ndarray, percentile: float) -> float:
    """The network's per-volume intensity scale, from what a scanner gives: the ``percentile``
    (``preprocessing.scale_percentile``) of the zero-filled magnitude ``zero_filled`` (S, H, W) of
    ALL the volume's slices (:func:`robust_scale` of its voxels > 0).

    The network sees ``zero_filled / scale`` and is trained towards ``target / scale``; its output
    times ``scale`` is the reconstruction on the reference's axis.  No reference statistic enters:
    the zero-filled image is linear in the k-space, so a volume scaled by any factor (the shards'
    reference scale, a scanner's units) gives the same network input (docs/definitions.md,
    "Intensities").  Raises VolumeError for an all-zero input.
    """
    return robust_scale(np.abs(np.asarray(zero_filled)), percentile)


def scaled_target_slices(
    volume_ras: np.ndarray, prep: Preprocessing
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """RAS volume -> (target (S, H, W) float32, slice_index (S,) int32, scale, data_range).

    The training targets of a shard: :func:`volume_to_slices`, divided by :func:`robust_scale` (the
    ``prep.scale_percentile`` of the positive voxels), negatives clipped to 0; data_range is the
    maximum. Raises VolumeError for an empty volume (no voxel > 0).
    """
    target, slice_index = volume_to_slices(volume_ras, prep)
    scale = robust_scale(target, prep.scale_percentile)
    target *= np.float32(1.0 / scale)
    np.maximum(target, 0, out=target)
    return target, slice_index, float(scale), float(target.max())


def smooth_phase(shape: Sequence[int], seed: int | Sequence[int]) -> np.ndarray:
    """Smooth random phase (S, H, W) float32 radians, peak |phase| = pi.

    A sum of 4 low-order 2D cosines (at most 1.5 cycles across the plane) whose amplitudes drift
    slowly (at most one cycle) across slices - like B0/coil phase; it breaks the conjugate symmetry
    of k-space.
    """
    s, h, w = (int(v) for v in shape)
    rng = np.random.default_rng(seed)
    n_terms = 4
    y = np.arange(h)[:, None] / h
    x = np.arange(w)[None, :] / w
    z = np.arange(s) / max(s, 1)
    planes = np.empty((n_terms, h * w), dtype=np.float32)
    amps = np.empty((s, n_terms), dtype=np.float32)
    for t in range(n_terms):
        fy, fx = rng.uniform(-1.5, 1.5, size=2)
        planes[t] = np.cos(2 * np.pi * (fy * y + fx * x) + rng.uniform(0, 2 * np.pi)).ravel()
        amps[:, t] = rng.uniform(0.5, 1.0) + 0.5 * np.cos(
            2 * np.pi * rng.uniform(0, 1) * z + rng.uniform(0, 2 * np.pi)
        )
    phase = (amps @ planes).reshape(s, h, w)  # one matrix product: no (S, H, W) temporaries
    peak = float(np.abs(phase).max())
    if peak > 0:
        phase *= np.float32(np.pi / peak)
    return phase


def phase_seed_for(subject: str, phase_seed: int) -> tuple[int, int]:
    """Seed of a subject's smooth phase: (phase_seed, crc32 of the subject id) - stable across
    runs."""
    return int(phase_seed), zlib.crc32(subject.encode("utf-8"))


def simulate_kspace(target: np.ndarray, mask: np.ndarray, phase: np.ndarray | None) -> np.ndarray:
    """Undersampled k-space (S, H, W) complex64 = ``fft2c(target * exp(i * phase)) * mask``.

    ``target`` (S, H, W) real (scaled magnitude); ``mask`` (H, W) bool; ``phase`` (S, H, W) radians
    or None.
    """
    if target.ndim != 3:
        raise ValueError(f"target must be (S, H, W), got shape {target.shape}")
    if mask.shape != target.shape[1:]:
        raise ValueError(f"mask shape {mask.shape} does not match slices {target.shape[1:]}")
    image = np.asarray(target, dtype=np.float32)
    if phase is not None:
        if phase.shape != target.shape:
            raise ValueError(f"phase shape {phase.shape} does not match target {target.shape}")
        phase = np.asarray(phase, dtype=np.float32)
        complex_image = np.empty(
            image.shape, dtype=np.complex64
        )  # float32 cos/sin: ~10x faster than exp
        trig = np.cos(phase)
        np.multiply(image, trig, out=complex_image.real)
        np.sin(phase, out=trig)
        np.multiply(image, trig, out=complex_image.imag)
        image = complex_image
    kspace = fft2c(image, overwrite_x=phase is not None).astype(np.complex64, copy=False)
    kspace *= mask.astype(np.float32)
    return kspace


class SimulatedSlices(NamedTuple):
    """A volume's slices as a shard holds them (:func:`simulate_acquisition`)."""

    kspace: np.ndarray  # (S, H, W) complex64, undersampled
    target: np.ndarray  # (S, H, W) float32 scaled reference magnitude
    slice_index: np.ndarray  # (S,) int32 index along the RAS readout axis
    scale: float  # the robust scale the volume was divided by
    data_range: float  # the target maximum


def simulate_acquisition(
    volume_ras: np.ndarray, prep: Preprocessing, mask: np.ndarray, phase_key: str
) -> SimulatedSlices:
    """RAS volume -> its scaled target slices and their simulated undersampled k-space.

    :func:`scaled_target_slices`, then (``prep.phase == "smooth"``) a :func:`smooth_phase` seeded by
    :func:`phase_seed_for` (``phase_key``, ``prep.phase_seed``), then :func:`simulate_kspace` with
    ``mask`` (H, W) bool.  Raises VolumeError for an empty volume.
    """
    target, slice_index, scale, data_range = scaled_target_slices(volume_ras, prep)
    phase = (
        smooth_phase(target.shape, phase_seed_for(phase_key, prep.phase_seed))
        if prep.phase == "smooth"
        else None
    )
    kspace = simulate_kspace(target, mask, phase)
    return SimulatedSlices(kspace, target, slice_index, scale, data_range)


def slice_signal_fraction(target: np.ndarray, data_range: float) -> np.ndarray:
    """Fraction (S,) float32 of each slice's pixels above ``0.1 * data_range``."""
    return np.mean(target > 0.1 * float(data_range), axis=(1, 2), dtype=np.float64).astype(
        np.float32
    )
