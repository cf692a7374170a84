"""Quality control of extracted NIfTI volumes -> subjects.csv (one row per readable 3D volume).

Every volume is opened and fully read, so a corrupt file fails here, naming the file, rather than in
a later stage; known-bad subjects can be skipped with ``exclude`` (they are never opened).
"""

from __future__ import annotations

import logging
import re
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.filebasedimages import ImageFileError

from ssimrecon.checksums import file_md5
from ssimrecon.errors import VolumeError
from ssimrecon.progress import track

log = logging.getLogger(__name__)

#: subjects.csv columns, in order
COLUMNS = [
    "subject",
    "site",
    "file",
    "shape",
    "voxel_size",
    "orientation",
    "intensity_min",
    "intensity_max",
    "md5",
]
#: IXI file names: ``IXI002-Guys-0828-T1.nii.gz`` -> subject IXI002, site Guys
_IXI_NAME = re.compile(r"^(?P<subject>IXI\d+)-(?P<site>[A-Za-z]+)-\d+-T1\.nii(\.gz)?$")
#: the NIfTI file names QC reads, compressed or not
NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: characters a subject id may hold (it becomes a file name and a Snakemake wildcard)
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
#: the largest volume QC will read (2^30 voxels, 4 GiB as float32; IXI T1 has 9.8 million)
MAX_VOXELS = 2**30
_READ_ERRORS = (ImageFileError, OSError, EOFError, ValueError, zlib.error)


def nifti_stem(name: str) -> str:
    """File name without its ``.nii.gz`` / ``.nii`` suffix."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def parse_ixi_name(name: str) -> tuple[str, str]:
    """(subject, site) from an IXI T1 file name; other names give (a subject id made of the file
    name's stem with every run of characters outside ``[A-Za-z0-9_-]`` replaced by ``-``,
    "unknown"). The original name stays in subjects.csv's ``file`` column."""
    match = _IXI_NAME.match(name)
    if match:
        return match.group("subject"), match.group("site")
    subject = _UNSAFE_ID_CHARS.sub("-", nifti_stem(name)).strip("-_")
    return subject or "unnamed", "unknown"


def _format_sizes(values: tuple[float, ...]) -> str:
    """``0.9375x0.9375x1.2``: each value rounded to 4 decimals, trailing zeros dropped."""
    return "x".join(f"{round(float(v), 4):.4f}".rstrip("0").rstrip(".") for v in values)


def inspect_volume(path: Path | str) -> dict[str, object]:
    """Read one NIfTI volume fully and describe it as a subjects.csv row (see ``COLUMNS``).

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
    subject, site = parse_ixi_name(path.name)
    codes = nib.aff2axcodes(image.affine)
    return {
        "subject": subject,
        "site": site,
        "file": str(path),
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


def _names_of(path: Path) -> set[str]:
    """What an ``exclude`` entry may name: the subject id, the file name or its stem."""
    subject, _ = parse_ixi_name(path.name)
    return {subject, path.name, nifti_stem(path.name)}


def _is_excluded(path: Path, exclude: set[str]) -> bool:
    return bool(_names_of(path) & exclude)


def build_subjects_table(
    input_dir: Path | str, exclude: set[str] | frozenset[str] = frozenset()
) -> pd.DataFrame:
    """subjects.csv table over ``input_dir/**/*.nii.gz`` (sorted), skipping excluded subjects.

    ``exclude`` holds subject ids (``IXI002``) or file names; excluded files are never opened.
    ``file`` is each path as found under ``input_dir`` as given (relative stays relative). Duplicate
    subject ids or an empty result raise SsimreconError.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise VolumeError(f"input directory {input_dir} does not exist")
    exclude = set(exclude)
    paths = sorted(p for suffix in NIFTI_SUFFIXES for p in input_dir.glob(f"**/*{suffix}"))
    rows: list[dict[str, object]] = []
    seen: dict[str, Path] = {}
    matched: set[str] = set()
    for path in track(paths, "qc", "volumes"):
        if _is_excluded(path, exclude):
            matched |= _names_of(path) & exclude
            log.info("excluded %s (not opened)", path)
            continue
        row = inspect_volume(path)
        subject = str(row["subject"])
        if subject in seen:
            raise VolumeError(f"duplicate subject {subject}: {seen[subject]} and {path}")
        seen[subject] = path
        rows.append(row)
    for unused in sorted(exclude - matched):
        log.warning("exclude entry %r matches no file under %s", unused, input_dir)
    if not rows:
        raise VolumeError(f"no usable *.nii.gz or *.nii volumes under {input_dir}")
    log.info(
        "%d volumes passed, %d excluded, under %s", len(rows), len(paths) - len(rows), input_dir
    )
    return pd.DataFrame(rows, columns=COLUMNS)
