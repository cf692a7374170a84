"""Measured k-space in: fastMRI multi-coil brain files (:mod:`ssimrecon.kspace.fastmri`) as the
workflow's source (``source.fastmri``), their QC rows and their multicoil shards.

From one file to a shard (docs/definitions.md, "Measured k-space"), slice by slice
(``preprocessing.slice_stride`` applies):

1. coil images ``ifft2c(kspace[s, c])`` (fastMRI's transform), centre-cropped to the recon matrix
   (:attr:`~ssimrecon.kspace.fastmri.FastMRIVolume.crop_size`, fastMRI's crop rule: removes the
   readout's 2x oversampling), then centre-cropped/padded to ``preprocessing.image_size`` as
   every slice is (equal sizes: unchanged);
2. target = their root-sum-of-squares: ``reconstruction_rss`` of the file (when the sizes agree);
3. coils: kept as measured when the file has ``preprocessing.coils`` of them, compressed to that
   many virtual coils (SVD over the volume, :func:`compress_coils`) when it has more, refused when
   it has fewer (batches need one coil count);
4. scale: the volume's target divided by its robust scale (``preprocessing.scale_percentile`` of
   the target voxels > 0, as for every shard), the coil k-space by the same; data_range = the
   scaled target's maximum;
5. coil k-space = ``fft2c`` of the (compressed) coil images; sensitivities estimated per slice from
   its central ``calibration_size`` square (:func:`~ssimrecon.kspace.coils.estimate_sensitivities`;
   the workflow passes ``mask.center_size``, the square every mask samples fully).

Undersampling then happens on reading, with the project's 2D variable-density masks, as for
simulated multicoil shards: a retrospective 2D undersampling of a 2D Cartesian acquisition, i.e. a
simulation on measured data (a real 2D acquisition can skip phase-encoding lines only).
``preprocessing.snr_db`` is not used: the noise is the scanner's.

Geometry: pixel spacing from the header's recon field of view (1 mm with a warning without one),
the native extent the recon matrix inside the slice, slice thickness the recon field of view's z
extent over its matrix z (a fastMRI slice's thickness), slices ``0..S-1`` along ``readout_axis``
2 (an axial stack); the arrays keep the file's (readout, phase-encoding) order: fastMRI files
record no patient orientation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssimrecon.checksums import file_md5
from ssimrecon.data.sources import SourceFile
from ssimrecon.errors import FastMRIError, ShardError, SsimreconError, VolumeError
from ssimrecon.kspace.coils import estimate_sensitivities, rss
from ssimrecon.kspace.fastmri import FastMRIVolume, center_crop, open_fastmri
from ssimrecon.kspace.fft import fft2c, ifft2c
from ssimrecon.kspace.mask import center_region
from ssimrecon.kspace.preprocess import (
    Preprocessing,
    _crop_or_pad,
    _fit,
    robust_scale,
    slice_signal_fraction,
)
from ssimrecon.kspace.shards import shard_attributes, write_shard

log = logging.getLogger(__name__)

#: the shards' ``source_format`` attribute
SOURCE_FORMAT = "fastmri"
#: pixel spacing (mm) of a file whose header has no recon field of view
DEFAULT_SPACING_MM = 1.0


@dataclasses.dataclass(frozen=True)
class MeasuredVolume:
    """One file's slices as a shard stores them (module docstring): ``coil_kspace`` (S, C, H, W)
    complex64 and ``target`` (S, H, W) float32, both divided by ``scale``; ``sensitivities``
    (S, C, H, W) complex64; ``slice_index`` (S,) int32; ``pixel_spacing`` (mm along H, W);
    ``native_extent`` [r0, r1, c0, c1]; ``slice_thickness_mm`` or None; ``acquisition``;
    ``file_coils`` (the coils the file measured)."""

    coil_kspace: np.ndarray
    target: np.ndarray
    sensitivities: np.ndarray
    slice_index: np.ndarray
    scale: float
    data_range: float
    pixel_spacing: tuple[float, float]
    native_extent: tuple[int, int, int, int]
    slice_thickness_mm: float | None
    acquisition: str | None
    file_coils: int


def check_preprocessing(prep: Preprocessing, where: str) -> None:
    """SsimreconError naming ``where`` and the key unless ``prep`` suits measured multi-coil
    data: forward_model multicoil, downsample 1, readout_axis 2."""
    if prep.forward_model != "multicoil":
        raise SsimreconError(
            f"{where}: measured multi-coil k-space needs preprocessing.forward_model multicoil, "
            f"not {prep.forward_model}"
        )
    for key, want in (("downsample", 1), ("readout_axis", 2)):
        if getattr(prep, key) != want:
            raise SsimreconError(
                f"{where}: fastMRI files are axial stacks at the recon matrix: "
                f"preprocessing.{key} must be {want}, got {getattr(prep, key)}"
            )


def geometry(volume: FastMRIVolume) -> tuple[tuple[float, float], float | None]:
    """(pixel spacing (mm along rows, columns), slice thickness mm or None) from the header."""
    spacing = volume.header.recon_pixel_spacing_mm
    if spacing is None or not all(np.isfinite(v) and v > 0 for v in spacing):
        log.warning(
            "%s: no recon fieldOfView_mm in the ISMRMRD header; pixel spacing taken as %g mm",
            volume.path,
            DEFAULT_SPACING_MM,
        )
        spacing = (DEFAULT_SPACING_MM, DEFAULT_SPACING_MM)
    fov, matrix = volume.header.recon_fov_mm, volume.header.recon_matrix
    thickness = fov[2] / matrix[2] if fov is not None and matrix[2] > 0 and fov[2] > 0 else None
    return (float(spacing[0]), float(spacing[1])), thickness


def coil_images(volume: FastMRIVolume, i: int, size: tuple[int, int]) -> np.ndarray:
    """Slice ``i``'s coil images (C, *size) complex64: ``ifft2c`` of the measured k-space,
    centre-cropped to the recon matrix, then centre-cropped/padded to ``size``."""
    images = center_crop(ifft2c(volume.kspace_slice(i), overwrite_x=True), volume.crop_size)
    return _crop_or_pad(np.ascontiguousarray(images, dtype=np.complex64), size)


def compress_coils(images: np.ndarray, coils: int) -> np.ndarray:
    """Coil images (S, C, H, W) as ``coils`` virtual coils: unchanged when C equals ``coils``,
    else the projection onto the ``coils`` principal components of the coil covariance over the
    whole volume (SVD coil compression; one unitary combination for every slice)."""
    s, c, h, w = images.shape
    if c == coils:
        return images
    if c < coils:
        raise ValueError(f"{c} coils cannot be compressed to {coils}")
    x = np.moveaxis(images, 1, 0).reshape(c, -1)
    covariance = x @ x.conj().T
    _, vectors = np.linalg.eigh(covariance)  # ascending eigenvalues
    basis = vectors[:, ::-1][:, :coils]
    out = (basis.conj().T @ x).reshape(coils, s, h, w)
    return np.ascontiguousarray(np.moveaxis(out, 0, 1), dtype=np.complex64)


def read_measured(path: Path | str, prep: Preprocessing, calibration_size: int) -> MeasuredVolume:
    """One fastMRI file -> :class:`MeasuredVolume` (module docstring). ShardError naming the file
    for an undersampled (test-set) file, too few coils or an empty volume."""
    path = Path(path)
    check_preprocessing(prep, str(path))
    size = tuple(prep.image_size)
    try:
        with open_fastmri(path) as volume:
            if volume.mask is not None:
                raise ShardError(
                    f"{path}: dataset 'mask' marks undersampled (test-set) k-space; shards need "
                    "fully sampled k-space to undersample retrospectively"
                )
            if volume.n_coils < prep.coils:
                raise ShardError(
                    f"{path}: {volume.n_coils} coils, fewer than preprocessing.coils "
                    f"({prep.coils}); set preprocessing.coils to at most the smallest coil count"
                )
            index = np.arange(0, volume.n_slices, prep.slice_stride, dtype=np.int32)
            images = np.stack([coil_images(volume, int(i), size) for i in index])
            spacing, thickness = geometry(volume)
            crop, acquisition, file_coils = volume.crop_size, volume.acquisition, volume.n_coils
    except FastMRIError as exc:
        raise ShardError(str(exc)) from None
    target = rss(images, axis=1)
    try:
        scale = robust_scale(target, prep.scale_percentile)
    except VolumeError as exc:
        raise ShardError(f"{path}: {exc}") from None
    target *= np.float32(1.0 / scale)
    images *= np.float32(1.0 / scale)
    images = compress_coils(images, prep.coils)
    coil_kspace = fft2c(images, overwrite_x=True).astype(np.complex64, copy=False)
    del images
    sensitivities = estimate_sensitivities(coil_kspace, calibration_size)
    (r0, _, rows), (c0, _, cols) = _fit(crop[0], size[0]), _fit(crop[1], size[1])
    return MeasuredVolume(
        coil_kspace=coil_kspace,
        target=target,
        sensitivities=sensitivities,
        slice_index=index,
        scale=float(scale),
        data_range=float(target.max()),
        pixel_spacing=spacing,
        native_extent=(r0, r0 + rows, c0, c0 + cols),
        slice_thickness_mm=thickness,
        acquisition=acquisition,
        file_coils=file_coils,
    )


def make_fastmri_shard(
    path: str | os.PathLike,
    subject: str,
    prep: Preprocessing,
    output: str | os.PathLike,
    *,
    calibration_size: int,
    source_md5: str | None = None,
) -> dict[str, float]:
    """fastMRI file -> multicoil shard at ``output`` (:func:`read_measured`, then
    :func:`~ssimrecon.kspace.shards.write_shard` with per-slice sensitivities); ShardError when
    the file's MD5 is not the one QC recorded. Returns timings in seconds (load, compute,
    write)."""
    t0 = time.perf_counter()
    actual_md5 = file_md5(path)
    if source_md5 is not None and actual_md5 != source_md5:
        raise ShardError(
            f"fastMRI file {path} has MD5 {actual_md5}, not the {source_md5} that qc recorded "
            f"for subject {subject}: the file changed since qc (rerun qc)"
        )
    t1 = time.perf_counter()
    measured = read_measured(path, prep, calibration_size)
    signal = slice_signal_fraction(measured.target, measured.data_range)
    t2 = time.perf_counter()
    attrs = shard_attributes(
        subject=subject,
        scale=measured.scale,
        data_range=measured.data_range,
        source_file=str(path),
        source_md5=actual_md5,
        prep=prep,
        geometry={
            "pixel_spacing": json.dumps(list(measured.pixel_spacing)),
            "native_extent": json.dumps(list(measured.native_extent)),
        },
    )
    attrs["source_format"] = SOURCE_FORMAT
    attrs["acquisition"] = measured.acquisition or ""
    attrs["calibration_size"] = int(calibration_size)
    attrs["file_coils"] = int(measured.file_coils)
    if measured.slice_thickness_mm is not None:
        attrs["slice_thickness_mm"] = float(measured.slice_thickness_mm)
    write_shard(
        output,
        target=measured.target,
        phase=None,
        slice_index=measured.slice_index,
        slice_signal=signal,
        attrs=attrs,
        coil_kspace=measured.coil_kspace,
        sensitivities=measured.sensitivities,
    )
    t3 = time.perf_counter()
    timings = {"load": t1 - t0, "compute": t2 - t1, "write": t3 - t2}
    log.info(
        "shard %s (fastMRI %s, %d -> %d coils): %d slices %dx%d, scale %.4g",
        subject,
        measured.acquisition,
        measured.file_coils,
        prep.coils,
        *measured.target.shape,
        measured.scale,
    )
    return timings


def _sizes(values: Sequence[float]) -> str:
    return "x".join(f"{round(float(v), 4):.4f}".rstrip("0").rstrip(".") for v in values)


def inspect_fastmri(path: str | os.PathLike) -> dict[str, Any]:
    """The subjects.csv columns of one fastMRI file (QC): every slice's RSS image computed (so a
    damaged file fails here, naming it); ``shape`` recon rows x columns x slices, ``voxel_size``
    their mm, ``orientation`` ``RAS`` (the shard's array order: rows, columns, slices; the files
    record no patient orientation), RSS intensity range, MD5, ``participant`` (the
    ``patient_id`` attribute, else empty) and ``acquisition``. VolumeError naming the file."""
    try:
        with open_fastmri(path) as volume:
            images = volume.image_rss_volume()
            (dy, dx), thickness = geometry(volume)
            h, w = volume.crop_size
            patient = str(volume.attrs.get("patient_id") or "")
            acquisition = volume.acquisition or ""
            slices = volume.n_slices
    except FastMRIError as exc:
        raise VolumeError(str(exc)) from None
    if not np.all(np.isfinite(images)):
        raise VolumeError(f"{path}: k-space holds NaN or infinite values")
    if not np.any(images > 0):
        raise VolumeError(f"{path}: k-space is all zero")
    return {
        "shape": f"{h}x{w}x{slices}",
        "voxel_size": _sizes((dy, dx, thickness or DEFAULT_SPACING_MM)),
        "orientation": "RAS",
        "intensity_min": float(images.min()),
        "intensity_max": float(images.max()),
        "md5": file_md5(path),
        "participant": patient,
        "acquisition": acquisition,
    }


def select_acquisitions(
    files: Sequence[SourceFile],
    acquisitions: Sequence[str],
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[SourceFile]:
    """The files whose ``acquisition`` attribute is one of ``acquisitions`` (each opened and
    validated), and the ``exclude``d ones unopened (QC then skips them); VolumeError naming a file
    without the attribute, or the folder when none is kept."""
    wanted, kept = set(acquisitions), []
    for source in files:
        if source.names() & set(exclude):
            kept.append(source)
            continue
        try:
            with open_fastmri(source.file) as volume:
                acquisition = volume.acquisition
        except FastMRIError as exc:
            raise VolumeError(str(exc)) from None
        if acquisition is None:
            raise VolumeError(f"{source.file}: no attribute 'acquisition' to select by")
        if acquisition in wanted:
            kept.append(source)
        else:
            log.info(
                "%s: acquisition %s not selected (source.fastmri.acquisitions)",
                source.file,
                acquisition,
            )
    if len(kept) == sum(bool(f.names() & set(exclude)) for f in files):
        folder = Path(files[0].file).parent if files else "the source"
        raise VolumeError(f"no fastMRI file with acquisition in {sorted(wanted)} in {folder}")
    return kept


def calibration_size_of(mask: np.ndarray) -> int:
    """The side of the largest centred square (:func:`~ssimrecon.kspace.mask.center_region`) that
    ``mask`` (H, W) samples fully: the calibration region a scan under that mask has."""
    mask = np.asarray(mask, dtype=bool)
    best = 0
    for side in range(1, min(mask.shape) + 1):
        if not mask[center_region(mask.shape, side)].all():
            break
        best = side
    return best
