"""Quality control of the source's NIfTI volumes -> subjects.csv (one row per readable 3D volume).

Every volume is opened and fully read, so a corrupt file fails here, naming the file, rather than in
a later stage; known-bad subjects can be skipped with ``exclude`` (they are never opened).
"""

from __future__ import annotations

import csv
import logging
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.filebasedimages import ImageFileError

from ssimrecon.checksums import file_md5
from ssimrecon.data.sources import SourceFile, folder_files
from ssimrecon.errors import SsimreconError, VolumeError
from ssimrecon.progress import track

log = logging.getLogger(__name__)

#: subjects.csv columns, in order: the source's columns, then what QC measures
COLUMNS = [
    "subject",
    "site",
    "file",
    "source_name",
    "shape",
    "voxel_size",
    "orientation",
    "intensity_min",
    "intensity_max",
    "md5",
]
#: the columns :func:`inspect_volume` measures
VOLUME_COLUMNS = COLUMNS[4:]
#: the largest volume QC will read (2^30 voxels, 4 GiB as float32; IXI T1 has 9.8 million)
MAX_VOXELS = 2**30
_READ_ERRORS = (ImageFileError, OSError, EOFError, ValueError, zlib.error)


def _format_sizes(values: tuple[float, ...]) -> str:
    """``0.9375x0.9375x1.2``: each value rounded to 4 decimals, trailing zeros dropped."""
    return "x".join(f"{round(float(v), 4):.4f}".rstrip("0").rstrip(".") for v in values)


def inspect_volume(path: Path | str) -> dict[str, object]:
    """Read one NIfTI volume fully and describe it (the subjects.csv columns ``VOLUME_COLUMNS``).

    ``shape`` and ``voxel_size`` are as stored on disk (``AxBxC``); ``orientation`` is nibabel's
    axis codes of the affine (e.g. ``PSR``). VolumeError names the file if it cannot be read, is not
    3D or holds non-finite values.
    """
    path = Path(path)
    try:
        image = nib.load(path)
        shape = tuple(int(n) for n in image.shape)
        _check_shape(path, shape)
        data = np.asanyarray(image.dataobj)
    except VolumeError:
        raise
    except FileNotFoundError as exc:
        raise VolumeError(f"{path}: no such file") from exc
    except MemoryError as exc:
        raise VolumeError(f"{path}: not enough memory to read a volume of shape {shape}") from exc
    except _READ_ERRORS as exc:
        raise VolumeError(
            f"{path}: cannot read NIfTI volume ({type(exc).__name__}: {exc})"
        ) from exc
    if not np.all(np.isfinite(data)):
        raise VolumeError(f"{path}: volume holds NaN or infinite values")
    if not np.any(data > 0):
        raise VolumeError(f"{path}: volume has no voxel above 0 (all zero or negative)")
    codes = nib.aff2axcodes(image.affine)
    return {
        "shape": "x".join(str(n) for n in shape),
        "voxel_size": _format_sizes(image.header.get_zooms()[:3]),
        "orientation": "".join(code or "?" for code in codes),
        "intensity_min": float(data.min()),
        "intensity_max": float(data.max()),
        "md5": file_md5(path),
    }


def _check_shape(path: Path, shape: tuple[int, ...]) -> None:
    """VolumeError naming ``path`` unless ``shape`` is 3D, >= 2 voxels per axis, <= MAX_VOXELS."""
    if len(shape) != 3:
        raise VolumeError(f"{path}: expected a 3D volume, found shape {shape}")
    if min(shape) < 2:
        raise VolumeError(f"{path}: a 3D volume needs at least 2 voxels per axis, found {shape}")
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise VolumeError(
            f"{path}: header declares {voxels} voxels {shape}, more than the limit {MAX_VOXELS}"
        )


def build_subjects_table(
    input_dir: Path | str, exclude: set[str] | frozenset[str] = frozenset()
) -> pd.DataFrame:
    """subjects.csv table over the volumes of ``input_dir`` (a folder, e.g. the extracted archive:
    :func:`ssimrecon.data.sources.folder_files`); see :func:`subjects_table`. ``file`` is each
    path as found under ``input_dir`` as given (relative stays relative)."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise VolumeError(f"input directory {input_dir} does not exist")
    files = folder_files(input_dir)
    if not files:
        raise VolumeError(f"no usable *.nii.gz or *.nii volumes under {input_dir}")
    return subjects_table(files, exclude, str(input_dir))


def subjects_table(
    files: list[SourceFile],
    exclude: set[str] | frozenset[str] = frozenset(),
    where: str = "",
    inspect: Callable[[str], dict[str, object]] = inspect_volume,
) -> pd.DataFrame:
    """subjects.csv table (``COLUMNS``): every file read fully, in the order given, skipping
    excluded ones. ``inspect`` measures a file (default :func:`inspect_volume`; measured k-space:
    ``ssimrecon.kspace.fastmri_source.inspect_fastmri``); columns it adds beyond ``COLUMNS``
    follow them (fastMRI: ``participant``, ``acquisition``).

    ``exclude`` holds subject ids (``IXI002``), relative paths, file names or their stems;
    excluded files are never opened. An unreadable volume, or no volume left, raises VolumeError
    (``where`` names the source in that message).
    """
    exclude = set(exclude)
    rows: list[dict[str, object]] = []
    matched: set[str] = set()
    for source in track(files, "qc", "volumes"):
        names = source.names() & exclude
        if names:
            matched |= names
            log.info("excluded %s (not opened)", source.file)
            continue
        measured = inspect(source.file)
        rows.append(
            {
                "subject": source.subject,
                "site": source.site,
                "file": source.file,
                "source_name": source.source_name,
                **measured,
            }
        )
    for unused in sorted(exclude - matched):
        log.warning("exclude entry %r matches no file of %s", unused, where or "the source")
    if not rows:
        raise VolumeError(f"no usable *.nii.gz or *.nii volumes in {where or 'the source'}")
    log.info("%d volumes passed, %d excluded, in %s", len(rows), len(files) - len(rows), where)
    extra = [key for key in dict.fromkeys(k for row in rows for k in row) if key not in COLUMNS]
    return pd.DataFrame(rows, columns=COLUMNS + extra)


def lookup_subject(csv_path: str | os.PathLike, subject: str) -> tuple[str, str | None]:
    """(file, md5) of ``subject`` in a subjects.csv (columns ``subject, file, md5``)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise SsimreconError(f"subjects csv {csv_path} does not exist")
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or [])
        missing = {"subject", "file"} - columns
        if missing:
            raise SsimreconError(
                f"subjects csv {csv_path} lacks column(s) {', '.join(sorted(missing))}"
            )
        for row in reader:
            if row["subject"] == subject:
                return row["file"], (row.get("md5") or None)
    raise SsimreconError(f"subject {subject} not found in subjects csv {csv_path}")
