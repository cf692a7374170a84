"""HDF5 k-space shards, one per subject (fastMRI-like): write atomically, read by slice and with
their geometry (:class:`ShardReader`: pixel spacing, native extent, the training grid), validate,
make.

Layout (FORMAT_VERSION 5, independent of the acceleration): datasets ``target`` (S, H, W) float32
scaled reference magnitude (multicoil: the root-sum-of-squares of the fully sampled noisy coil
images), ``phase`` (S, H, W) float32 radians (with ``preprocessing.phase: smooth`` or
``forward_model: complex``; multicoil shards hold the phase in their coil k-space),
``coil_kspace`` (S, C, H, W) complex64 (the fully sampled noisy coil k-space) and
``sensitivities`` (C, H, W) complex64 (``forward_model: multicoil`` only; see
:mod:`ssimrecon.kspace.forward`; shards of measured k-space,
:mod:`ssimrecon.kspace.fastmri_source`, hold one estimate per slice, (S, C, H, W), and the
optional attributes ``slice_thickness_mm``, ``source_format`` and ``acquisition``),
``slice_index`` (S,) int32 (index along the RAS readout axis),
``slice_signal`` (S,) float32 (fraction of target pixels > 0.1 * data_range); attributes
``REQUIRED_ATTRS``, among them ``kspace_formula`` (how undersampled k-space is formed:
:func:`kspace_formula` of the forward model) and the slice geometry
of :func:`slice_geometry` as JSON arrays (``pixel_spacing``: mm of the H and W axes;
``native_extent``: the rows/columns holding image data, the rest being zero padding; JSON like
``preprocessing``, so that reading a shard never needs torch).  As fastMRI does, the undersampling
mask is applied when a slice is read: ``ShardReader(path, mask)`` returns
``mask * fft2c(target * exp(i * phase))`` (multicoil: ``mask * coil_kspace``, every coil under
the same mask), so one shard serves every acceleration (one mask file
each, ``masks/R<acceleration>.npz``) and an added acceleration costs no shard bytes;
``ssimrecon export-kspace`` writes a standalone HDF5 with the undersampled k-space of one mask.
Slice datasets are uncompressed and chunked one slice per chunk; every
dataset carries HDF5's Fletcher-32 checksum per chunk (format 3), so damaged data fails to read
instead of being used: :class:`ShardReader` then moves the file aside to ``<name>.damaged`` and
raises ShardError naming it, and the next run of the workflow rebuilds it. A shard is only written
when the disk has room for it, and only from the volume whose MD5 QC recorded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import h5py
import nibabel as nib
import numpy as np

from ssimrecon.atomic import atomic_output
from ssimrecon.checksums import file_md5
from ssimrecon.errors import ShardError, SsimreconError
from ssimrecon.kspace.fft import zero_filled_magnitude
from ssimrecon.kspace.forward import simulate, zero_filled_image
from ssimrecon.kspace.preprocess import (
    Preprocessing,
    input_scale,
    load_canonical,
    scaled_target_slices,
    simulate_kspace,
    slice_signal_fraction,
    volume_to_slices,
)
from ssimrecon.plain import to_plain

log = logging.getLogger(__name__)

#: 2: attributes ``pixel_spacing`` and ``native_extent``; 3: Fletcher-32 checksums on every dataset;
#: 4: no stored k-space or mask: the mask is applied on reading; 5: the forward models
#: (``preprocessing.forward_model``; multicoil shards store their coil k-space and sensitivities).
#: Older shards are refused, and the workflow rebuilds them.
FORMAT_VERSION = 5
#: bytes a shard needs beyond its arrays (HDF5 metadata, attributes)
_SHARD_OVERHEAD = 1 << 20
#: the ``kspace_formula`` attribute: how a reader forms undersampled k-space from a shard
KSPACE_FORMULA = (
    "kspace = mask * fft2c(target * exp(1j * phase)); phase = 0 when the shard has no 'phase' "
    "dataset; fft2c = centred orthonormal 2D FFT over (H, W); mask (H, W) bool from the mask "
    "file of the acceleration (masks/R<acceleration>.npz)"
)
#: the ``kspace_formula`` of multicoil shards
MULTICOIL_FORMULA = (
    "kspace[:, c] = mask * coil_kspace[:, c] for every coil c (one mask for all coils); "
    "coil_kspace = fft2c(sensitivities[c] * target_complex) + complex Gaussian noise of "
    "preprocessing.snr_db (10 log10(mean |k|^2 / E|n|^2) over the fully sampled volume), "
    "target_complex = magnitude * exp(1j * phase); target = sqrt(sum_c |ifft2c(coil_kspace[:, "
    "c])|^2) (root-sum-of-squares); the network's zero-filled input is the SENSE combination "
    "sum_c conj(sensitivities[c]) ifft2c(kspace[:, c]) / sum_c |sensitivities[c]|^2; fft2c = "
    "centred orthonormal 2D FFT over (H, W); mask (H, W) bool from the mask file of the "
    "acceleration (masks/R<acceleration>.npz)"
)


def kspace_formula(forward_model: str) -> str:
    """The ``kspace_formula`` attribute of a shard of ``forward_model``."""
    return MULTICOIL_FORMULA if forward_model == "multicoil" else KSPACE_FORMULA


REQUIRED_DATASETS = ("target", "slice_index", "slice_signal")
REQUIRED_ATTRS = (
    "subject",
    "kspace_formula",
    "scale",
    "data_range",
    "source_file",
    "source_md5",
    "readout_axis",
    "format_version",
    "preprocessing",
    "pixel_spacing",
    "native_extent",
)


def ras_voxel_size(img: nib.spatialimages.SpatialImage) -> tuple[float, float, float]:
    """Voxel size (mm) along the R, A and S axes of ``img``'s closest canonical (RAS) array."""
    sizes = nib.affines.voxel_sizes(img.affine)
    out = [0.0, 0.0, 0.0]
    for source_axis, (ras_axis, _) in enumerate(nib.orientations.io_orientation(img.affine)):
        out[int(ras_axis)] = float(sizes[source_axis])
    return out[0], out[1], out[2]


def slice_geometry(
    ras_shape: tuple[int, int, int],
    ras_voxel: tuple[float, float, float],
    prep: Preprocessing,
) -> dict[str, str]:
    """The slice-grid attributes of a shard made from a RAS volume of ``ras_shape`` voxels of
    ``ras_voxel`` mm.

    ``pixel_spacing``: [mm along H, mm along W] (the in-plane RAS axes in order, times
    ``prep.downsample``).  ``native_extent``: [row_start, row_stop, col_start, col_stop], the
    half-open box of each (H, W) slice that :func:`~ssimrecon.kspace.preprocess.volume_to_slices`
    fills with image data (outside it: zero padding), found by slicing a volume of ones.  Both as
    JSON text (the attribute values).
    """
    inplane = [a for a in range(3) if a != prep.readout_axis]
    spacing = [float(ras_voxel[a]) * prep.downsample for a in inplane]
    shape = [1 if a == prep.readout_axis else int(ras_shape[a]) for a in range(3)]
    footprint = volume_to_slices(np.ones(shape, np.float32), prep)[0][0] > 0
    rows, cols = np.flatnonzero(footprint.any(axis=1)), np.flatnonzero(footprint.any(axis=0))
    extent = [int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1]
    return {"pixel_spacing": json.dumps(spacing), "native_extent": json.dumps(extent)}


def shard_attributes(
    *,
    subject: str,
    scale: float,
    data_range: float,
    source_file: str,
    source_md5: str,
    prep: Preprocessing,
    geometry: dict[str, str],
) -> dict[str, Any]:
    """The attributes of a shard (``REQUIRED_ATTRS``, in that order) of ``subject``'s slices:
    scaled by ``scale`` (the target maximum is ``data_range``), made from ``source_file`` (MD5
    ``source_md5``) with ``prep``, slice ``geometry`` from :func:`slice_geometry`."""
    return {
        "subject": subject,
        "kspace_formula": kspace_formula(prep.forward_model),
        "scale": scale,
        "data_range": data_range,
        "source_file": str(source_file),
        "source_md5": str(source_md5),
        "readout_axis": int(prep.readout_axis),
        "format_version": FORMAT_VERSION,
        "preprocessing": prep.to_json(),
        **geometry,
    }


def write_shard(
    path: str | os.PathLike,
    *,
    target: np.ndarray,
    phase: np.ndarray | None,
    slice_index: np.ndarray,
    slice_signal: np.ndarray,
    attrs: dict[str, Any],
    coil_kspace: np.ndarray | None = None,
    sensitivities: np.ndarray | None = None,
) -> None:
    """Write a shard to a hidden temporary file next to ``path``, then rename it onto ``path``.

    ``coil_kspace`` (S, C, H, W) and ``sensitivities`` (C, H, W) (or per slice (S, C, H, W)),
    complex64, go together (multicoil shards). A job killed mid-write leaves only the temp file
    (``.<name>.<random>.tmp``, see ``ssimrecon.atomic``), never a valid-looking shard at ``path``.
    """
    path = Path(path)
    missing = [a for a in REQUIRED_ATTRS if a not in attrs]
    if missing:
        raise ShardError(f"shard {path}: missing attribute(s) {', '.join(missing)}")
    if int(attrs["format_version"]) != FORMAT_VERSION:
        raise ShardError(
            f"shard {path}: format_version must be {FORMAT_VERSION}, got {attrs['format_version']}"
        )
    s, h, w = target.shape
    if (
        (phase is not None and phase.shape != (s, h, w))
        or len(slice_index) != s
        or len(slice_signal) != s
    ):
        raise ShardError(
            f"shard {path}: inconsistent shapes target {target.shape}, phase "
            f"{None if phase is None else phase.shape}, "
            f"slice_index {np.shape(slice_index)}, slice_signal {np.shape(slice_signal)}"
        )
    if (coil_kspace is None) != (sensitivities is None) or (
        coil_kspace is not None
        and (
            coil_kspace.ndim != 4
            or (coil_kspace.shape[0], *coil_kspace.shape[2:]) != (s, h, w)
            or np.shape(sensitivities) not in (coil_kspace.shape[1:], coil_kspace.shape)
        )
    ):
        raise ShardError(
            f"shard {path}: coil_kspace {None if coil_kspace is None else coil_kspace.shape} "
            f"must be (S, C, H, W) = ({s}, C, {h}, {w}) with sensitivities (C, H, W) or "
            f"(S, C, H, W), got "
            f"{None if sensitivities is None else sensitivities.shape}"
        )
    planes = 1 if phase is None else 2
    coil_bytes = 0 if coil_kspace is None else (coil_kspace.size + sensitivities.size) * 8
    _check_free_space(path, target.size * 4 * planes + coil_bytes + _SHARD_OVERHEAD)
    # large and cheap to rebuild from its volume: no fsync (durability after a power loss is
    # not needed)
    with atomic_output(path, fsync=False) as tmp, h5py.File(tmp, "w") as f:
        chunks = (1, h, w) if s > 0 else None
        checked = {"fletcher32": True} if s > 0 else {}
        f.create_dataset(
            "target", data=np.asarray(target, dtype=np.float32), chunks=chunks, **checked
        )
        if phase is not None:
            f.create_dataset(
                "phase", data=np.asarray(phase, dtype=np.float32), chunks=chunks, **checked
            )
        if coil_kspace is not None:
            coil_chunks = (1, *coil_kspace.shape[1:]) if s > 0 else None
            f.create_dataset(
                "coil_kspace",
                data=np.asarray(coil_kspace, dtype=np.complex64),
                chunks=coil_chunks,
                **checked,
            )
            f.create_dataset(
                "sensitivities", data=np.asarray(sensitivities, dtype=np.complex64), **checked
            )
        for name, data in (
            ("slice_index", np.asarray(slice_index, dtype=np.int32)),
            ("slice_signal", np.asarray(slice_signal, dtype=np.float32)),
        ):
            f.create_dataset(name, data=data, **({"chunks": True, **checked} if data.size else {}))
        for key, value in attrs.items():
            f.attrs[key] = value


def _check_free_space(path: Path, needed: int) -> None:
    """ShardError before writing when the disk lacks ``needed`` bytes (HDF5 can crash on a full disk
    instead of raising)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if needed > free:
        raise ShardError(
            f"shard {path} needs {needed / 1e6:.1f} MB but {path.parent} has only "
            f"{free / 1e6:.1f} MB free"
        )


def validate_shard(path: str | os.PathLike) -> None:
    """Raise ShardError naming ``path`` and the problem: missing file/dataset/attr, bad version or
    shapes."""
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"shard {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ShardError(f"shard {path} is not a readable HDF5 file: {exc}") from exc
    with f:
        for name in REQUIRED_DATASETS:
            if name not in f:
                raise ShardError(f"shard {path} lacks dataset '{name}'")
        for name in REQUIRED_ATTRS:
            if name not in f.attrs:
                raise ShardError(f"shard {path} lacks attribute '{name}'")
        version = to_plain(f.attrs["format_version"], f"shard {path} format_version")
        if version != FORMAT_VERSION:
            raise ShardError(
                f"shard {path} has format_version {version}, expected {FORMAT_VERSION}"
            )
        shape = f["target"].shape
        if len(shape) != 3 or ("phase" in f and f["phase"].shape != shape):
            raise ShardError(
                f"shard {path}: target {shape} must be (S, H, W) and phase, if present, the same"
            )
        for name in ("slice_index", "slice_signal"):
            if f[name].shape != (shape[0],):
                raise ShardError(
                    f"shard {path}: {name} has shape {f[name].shape}, expected ({shape[0]},)"
                )
        _check_geometry(
            path,
            to_plain(f.attrs["pixel_spacing"], f"shard {path} pixel_spacing"),
            to_plain(f.attrs["native_extent"], f"shard {path} native_extent"),
            shape[1:],
        )
        try:
            prep = Preprocessing.from_json(
                to_plain(f.attrs["preprocessing"], f"shard {path} preprocessing")
            )
        except SsimreconError as exc:
            raise ShardError(f"shard {path}: bad 'preprocessing' attribute: {exc}") from exc
        _check_forward_model(path, f, prep, shape)


def _check_forward_model(path: Path, f: h5py.File, prep: Preprocessing, shape: tuple) -> None:
    """ShardError naming ``path`` unless the datasets are those of ``prep.forward_model``: a
    ``phase`` for complex, ``coil_kspace`` (S, coils, H, W) and ``sensitivities`` (coils, H, W)
    or per slice (S, coils, H, W) for multicoil (and none of them for magnitude data without
    ``phase: smooth``)."""
    model = prep.forward_model
    if model == "complex" and "phase" not in f:
        raise ShardError(f"shard {path}: forward_model complex needs a 'phase' dataset")
    if model == "multicoil":
        coils = (shape[0], prep.coils, *shape[1:])
        for name, want in (("coil_kspace", coils), ("sensitivities", coils[1:])):
            if name == "sensitivities" and name in f and f[name].shape == coils:
                continue  # one estimate per slice (measured k-space)
            if name not in f or f[name].shape != want:
                got = f[name].shape if name in f else "none"
                raise ShardError(
                    f"shard {path}: forward_model multicoil needs dataset '{name}' of shape "
                    f"{want}, got {got}"
                )
    elif "coil_kspace" in f or "sensitivities" in f:
        raise ShardError(f"shard {path}: coil data in a shard of forward_model {model}")


def _json_numbers(path: Path, name: str, text: Any, n: int) -> list:
    """The JSON array of ``n`` numbers in attribute ``name``; ShardError naming ``path`` if not."""
    try:
        values = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        values = None
    if (
        not isinstance(values, list)
        or len(values) != n
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    ):
        raise ShardError(
            f"shard {path}: '{name}' must be a JSON array of {n} numbers, got {text!r}"
        )
    return values


def _check_geometry(path: Path, spacing: Any, extent: Any, size: tuple[int, int]) -> None:
    """ShardError naming ``path`` unless ``pixel_spacing`` holds two positive mm values and
    ``native_extent`` a non-empty box [r0, r1, c0, c1] of integers inside the (H, W) slices."""
    dy, dx = _json_numbers(path, "pixel_spacing", spacing, 2)
    if not (0 < dy < float("inf") and 0 < dx < float("inf")):
        raise ShardError(f"shard {path}: 'pixel_spacing' must be two positive mm values")
    r0, r1, c0, c1 = box = _json_numbers(path, "native_extent", extent, 4)
    h, w = size
    if not all(isinstance(v, int) for v in box) or not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
        raise ShardError(
            f"shard {path}: 'native_extent' {box} is not a box [r0, r1, c0, c1] inside the "
            f"{h}x{w} slices"
        )


def grid_record(
    readout_axis: int, pixel_spacing_mm: tuple[float, float], slice_thickness_mm: float | None
) -> dict[str, Any]:
    """The bundle's ``grid`` dict: orientation "RAS", readout_axis, pixel_spacing_mm,
    slice_thickness_mm."""
    return {
        "orientation": "RAS",
        "readout_axis": int(readout_axis),
        "pixel_spacing_mm": [float(v) for v in pixel_spacing_mm],
        "slice_thickness_mm": None if slice_thickness_mm is None else float(slice_thickness_mm),
    }


class ShardReader:
    """Read access to a validated shard; use as a context manager (or call :meth:`close`).

    ``mask`` (H, W) bool is the undersampling applied on reading (``KSPACE_FORMULA``); without one,
    only the targets and metadata can be read. ``read_slice(i)`` reads one chunk of each slice
    dataset and forms its k-space - cheap random access for training.
    """

    def __init__(self, path: str | os.PathLike, mask: np.ndarray | None = None) -> None:
        self.path = Path(path)
        try:
            validate_shard(self.path)
            self._file = h5py.File(self.path, "r")
        except ShardError as exc:
            if isinstance(exc.__cause__, OSError):  # unreadable (truncated, damaged), not outdated
                self._damaged(exc.__cause__)
            raise
        self.attrs: dict[str, Any] = {
            k: to_plain(v, f"shard {self.path} attribute {k}") for k, v in self._file.attrs.items()
        }
        self.shape: tuple[int, int, int] = tuple(self._file["target"].shape)  # type: ignore[assignment]
        self.num_slices: int = self.shape[0]
        self._has_phase = "phase" in self._file
        #: ``preprocessing.forward_model`` of the shard
        self.forward_model: str = self.preprocessing.forward_model
        self._multicoil = self.forward_model == "multicoil"
        self._sensitivities: np.ndarray | None = None
        self._mask = None if mask is None else np.asarray(mask, dtype=bool)
        if self._mask is not None and self._mask.shape != self.shape[1:]:
            self.close()
            raise ShardError(
                f"mask of shape {self._mask.shape} does not match the {self.shape[1]}x"
                f"{self.shape[2]} slices of shard {self.path}"
            )

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.num_slices

    def close(self) -> None:
        """Close the HDF5 file (idempotent)."""
        if getattr(self, "_file", None) is not None and self._file.id.valid:
            self._file.close()

    def _damaged(self, exc: OSError) -> None:
        """Move the unreadable shard aside (the workflow then rebuilds it) and raise ShardError."""
        self.close()
        aside = self.path.with_name(self.path.name + ".damaged")
        if self.path.exists():
            os.replace(self.path, aside)
        raise ShardError(
            f"shard {self.path} is damaged ({exc}); moved it to {aside}: run the workflow again "
            "to rebuild it"
        ) from exc

    def _read(self, name: str, index: Any = ()) -> np.ndarray:
        try:
            return self._file[name][index]
        except OSError as exc:  # Fletcher-32 mismatch, truncated data
            self._damaged(exc)
            raise  # unreachable: _damaged raises

    @property
    def preprocessing(self) -> Preprocessing:
        """The :class:`Preprocessing` the shard was made with."""
        return Preprocessing.from_json(self.attrs["preprocessing"])

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """(mm along H, mm along W) of the slice pixels."""
        dy, dx = json.loads(self.attrs["pixel_spacing"])
        return float(dy), float(dx)

    @property
    def native_extent(self) -> tuple[int, int, int, int]:
        """(row_start, row_stop, col_start, col_stop): the part of each slice holding image data."""
        r0, r1, c0, c1 = json.loads(self.attrs["native_extent"])
        return int(r0), int(r1), int(c0), int(c1)

    @property
    def slice_thickness_mm(self) -> float | None:
        """The ``slice_thickness_mm`` attribute when the shard has one (measured k-space), else
        the voxel size (mm) along the readout axis in the header of the shard's source volume
        (``source_file``); None when that file is gone or its header cannot be read."""
        if "slice_thickness_mm" in self.attrs:
            return float(self.attrs["slice_thickness_mm"])
        source = str(self.attrs.get("source_file") or "")
        if source and Path(source).is_file():
            with contextlib.suppress(Exception):  # header only; an unreadable file gives None
                image = nib.load(source)
                axes = [int(a) for a, _ in nib.orientations.io_orientation(image.affine)]
                sizes = nib.affines.voxel_sizes(image.affine)
                return float(sizes[axes.index(self.preprocessing.readout_axis)])
        return None

    @property
    def grid(self) -> dict[str, Any]:
        """The grid of the slices in physical units, as a model bundle records it
        (:func:`grid_record`): readout axis, :attr:`pixel_spacing`, :attr:`slice_thickness_mm`."""
        return grid_record(
            self.preprocessing.readout_axis, self.pixel_spacing, self.slice_thickness_mm
        )

    @property
    def mask(self) -> np.ndarray:
        """The sampling mask (H, W) bool this reader applies."""
        if self._mask is None:
            raise ShardError(
                f"shard {self.path} stores no k-space: open it with the mask of an acceleration "
                "(masks/R<acceleration>.npz)"
            )
        return self._mask

    @property
    def sensitivities(self) -> np.ndarray | None:
        """The coil sensitivities (C, H, W) complex64 of a multicoil shard (measured k-space:
        one estimate per slice, (S, C, H, W)), else None."""
        if self._multicoil and self._sensitivities is None:
            self._sensitivities = self._read("sensitivities")
        return self._sensitivities

    @property
    def per_slice_sensitivities(self) -> bool:
        """Whether the multicoil shard holds one sensitivity estimate per slice (S, C, H, W)."""
        return self._multicoil and self._file["sensitivities"].ndim == 4

    def slice_sensitivities(self, i: int) -> np.ndarray | None:
        """The sensitivities (C, H, W) of slice ``i`` (shared or per slice), None if not
        multicoil."""
        if not self._multicoil:
            return None
        if self.per_slice_sensitivities:
            return self._read("sensitivities", int(i) % self.num_slices)
        return self.sensitivities

    def _kspace(self, target: np.ndarray, index: Any) -> np.ndarray:
        """Undersampled k-space of ``target`` slices at ``index`` (KSPACE_FORMULA): (..., H, W)
        complex64, multicoil (..., C, H, W)."""
        mask = self.mask
        if self._multicoil:
            coils = self._read("coil_kspace", index)
            return (coils * mask.astype(np.float32)).astype(np.complex64, copy=False)
        stack = target.reshape(-1, *self.shape[1:])
        phase = self._read("phase", index).reshape(stack.shape) if self._has_phase else None
        return simulate_kspace(stack, mask, phase).reshape(target.shape)

    @property
    def slice_index(self) -> np.ndarray:
        """(S,) int32 index of each slice along the RAS readout axis."""
        return self._read("slice_index")

    @property
    def slice_signal(self) -> np.ndarray:
        """(S,) float32 fraction of target pixels > 0.1 * data_range."""
        return self._read("slice_signal")

    def read_slice(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(kspace (H, W) complex64 (multicoil: (C, H, W)), target (H, W) float32) of slice ``i``
        (negative counts from the end)."""
        if not -self.num_slices <= i < self.num_slices:
            raise IndexError(f"slice {i} out of range for {self.num_slices} slices in {self.path}")
        i = int(i) % self.num_slices
        target = self._read("target", i)
        return self._kspace(target, i), target

    def read_target_into(self, i: int, target_out: np.ndarray) -> None:
        """Read the target of slice ``i`` straight into preallocated C-contiguous ``target_out``
        (H, W) float32 (no intermediate array; batch readers)."""
        if not -self.num_slices <= i < self.num_slices:
            raise IndexError(f"slice {i} out of range for {self.num_slices} slices in {self.path}")
        try:
            self._file["target"].read_direct(target_out, np.s_[int(i) % self.num_slices])
        except OSError as exc:
            self._damaged(exc)

    def read_phase(self, i: int) -> np.ndarray | None:
        """The phase (H, W) float32 radians of slice ``i``, or None for magnitude-only shards."""
        return self._read("phase", int(i) % self.num_slices) if self._has_phase else None

    def read_kspace(self) -> np.ndarray:
        """All undersampled k-space (S, H, W) complex64 (multicoil (S, C, H, W)) under this
        reader's mask."""
        return self._kspace(self.read_target(), ())

    def read_coil_kspace(self, i: int) -> np.ndarray:
        """The fully sampled noisy coil k-space (C, H, W) complex64 of slice ``i`` (multicoil)."""
        if not self._multicoil:
            raise ShardError(f"shard {self.path} is {self.forward_model} data: no coil k-space")
        return self._read("coil_kspace", int(i) % self.num_slices)

    def zero_filled(self, kspace: np.ndarray, slices: Any = None) -> np.ndarray:
        """The zero-filled complex image of this shard's undersampled ``kspace``
        (:func:`~ssimrecon.kspace.forward.zero_filled_image`: SENSE-combined for multicoil).
        ``slices``: the slice positions ``kspace`` holds, where the sensitivities are per slice
        (None: every slice)."""
        maps = self.sensitivities
        if maps is not None and maps.ndim == 4 and slices is not None:
            maps = maps[np.asarray(slices)]
        return zero_filled_image(kspace, maps)

    def read_target(self) -> np.ndarray:
        """All targets (S, H, W) float32."""
        return self._read("target")

    def input_scale(self) -> float:
        """The network's intensity scale of this volume under this reader's mask:
        :func:`~ssimrecon.kspace.preprocess.input_scale` of the zero-filled magnitude of every
        slice (``preprocessing.scale_percentile``; multicoil: of the SENSE-combined zero-filled
        image); no reference statistic."""
        kspace = self.read_kspace()
        if not self._multicoil:
            return input_scale(zero_filled_magnitude(kspace), self.preprocessing.scale_percentile)
        return input_scale(np.abs(self.zero_filled(kspace)), self.preprocessing.scale_percentile)


def make_shard(
    volume_path: str | os.PathLike,
    subject: str,
    prep: Preprocessing,
    output: str | os.PathLike,
    *,
    source_md5: str | None = None,
) -> dict[str, float]:
    """NIfTI volume -> shard at ``output``. Returns timings in seconds (load, compute, write).

    Steps: load_canonical -> scaled target slices -> the forward model's fully sampled
    acquisition (:func:`~ssimrecon.kspace.forward.simulate`, seeded by ``prep.phase_seed`` and
    ``subject``: the phase of ``phase: smooth`` or of the complex reference, multicoil coil
    k-space with noise and its RSS target) -> write_shard.  An empty volume
    is a ShardError naming it.
    """
    t0 = time.perf_counter()
    actual_md5 = file_md5(volume_path)
    if source_md5 is not None and actual_md5 != source_md5:
        raise ShardError(
            f"volume {volume_path} has MD5 {actual_md5}, not the {source_md5} that qc recorded for "
            f"subject {subject}: the file changed since qc (rerun qc)"
        )
    source_md5 = actual_md5
    volume, source_img = load_canonical(volume_path)
    geometry = slice_geometry(volume.shape, ras_voxel_size(source_img), prep)
    t1 = time.perf_counter()

    try:
        target, slice_index, scale, data_range = scaled_target_slices(volume, prep)
    except SsimreconError as exc:  # e.g. robust_scale of an empty volume
        raise ShardError(f"volume {volume_path}: {exc}") from exc
    del volume
    try:
        acquisition = simulate(target, prep, subject)
    except SsimreconError as exc:
        raise ShardError(f"volume {volume_path}: {exc}") from exc
    target = acquisition.target
    data_range = float(target.max())  # multicoil: the RSS target's, noise included
    signal = slice_signal_fraction(target, data_range)
    t2 = time.perf_counter()

    attrs = shard_attributes(
        subject=subject,
        scale=scale,
        data_range=data_range,
        source_file=str(volume_path),
        source_md5=source_md5,
        prep=prep,
        geometry=geometry,
    )
    write_shard(
        output,
        target=target,
        phase=acquisition.phase,
        slice_index=slice_index,
        slice_signal=signal,
        attrs=attrs,
        coil_kspace=acquisition.coil_kspace,
        sensitivities=acquisition.sensitivities,
    )
    t3 = time.perf_counter()
    timings = {"load": t1 - t0, "compute": t2 - t1, "write": t3 - t2}
    log.info(
        "shard %s: %s slices %dx%d, scale %.4g, load %.2fs compute %.2fs write %.2fs",
        subject,
        *target.shape,
        scale,
        *timings.values(),
    )
    return timings
