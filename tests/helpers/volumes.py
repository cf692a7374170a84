"""IXI-like NIfTI volumes and tar archives of them."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np

#: voxel size (mm) and axis codes of the IXI T1 volumes (256x256x150, 0.9375x0.9375x1.2, PSR)
IXI_ZOOMS = (0.9375, 0.9375, 1.2)
IXI_AXCODES = "PSR"

_SITES = ("Guys", "HH", "IOP")


def ixi_file_name(subject: str, index: int = 0) -> str:
    """IXI-style T1 file name, e.g. ``IXI002-Guys-0828-T1.nii.gz`` for subject ``IXI002``."""
    return f"{subject}-{_SITES[index % len(_SITES)]}-{828 + index:04d}-T1.nii.gz"


def ixi_affine(zooms: tuple[float, float, float] = IXI_ZOOMS) -> np.ndarray:
    """4x4 affine whose axes point P, S, R (as in IXI T1) with the given voxel sizes."""
    affine = np.zeros((4, 4))
    affine[1, 0] = -zooms[0]  # axis 0 -> posterior
    affine[2, 1] = zooms[1]  # axis 1 -> superior
    affine[0, 2] = zooms[2]  # axis 2 -> right
    affine[3, 3] = 1.0
    return affine


def tiny_volume(shape: tuple[int, ...] = (16, 16, 8), seed: int = 0) -> np.ndarray:
    """A smooth ellipsoid 'head' with noise, float32 in about [0, 1000]; shape as given (any
    ndim)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids))
    volume = 800.0 * (radius < 0.8) + 200.0 * rng.random(shape)
    return volume.astype(np.float32)


def smooth_head(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Positive ellipsoid 'head' (soft edge, about 600) with an off-centre bright blob (orientation
    errors would move it) and noise up to 20, float32 of ``shape``."""
    rng = np.random.default_rng(seed)
    g = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r2 = (g[0] / 0.85) ** 2 + (g[1] / 0.8) ** 2 + (g[2] / 0.9) ** 2
    blob = (g[0] - 0.3) ** 2 + (g[1] + 0.2) ** 2 + (g[2] - 0.4) ** 2 < 0.08
    vol = (
        600.0 / (1 + np.exp(np.clip((r2 - 1) * 10, -50, 50)))
        + 300.0 * blob
        + 20.0 * rng.random(shape)
    )
    return vol.astype(np.float32)


def nifti_bytes(data: np.ndarray, zooms: tuple[float, float, float] = IXI_ZOOMS) -> bytes:
    """Gzipped NIfTI-1 file content for ``data`` with an IXI-like affine."""
    image = nib.Nifti1Image(data, ixi_affine(zooms))
    image.header.set_zooms(zooms + (1.0,) * (data.ndim - 3))
    return gzip.compress(image.to_bytes(), mtime=0)


def write_nifti(
    path: Path | str, data: np.ndarray, zooms: tuple[float, float, float] = IXI_ZOOMS
) -> Path:
    """Write ``data`` as a gzipped NIfTI file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nifti_bytes(data, zooms))
    return path


def corrupt_nifti_bytes(seed: int = 0) -> bytes:
    """A truncated .nii.gz: the first half of a valid gzipped volume (header readable, data not)."""
    valid = nifti_bytes(tiny_volume((16, 16, 8), seed))
    return valid[: len(valid) // 2]


def write_tiny_ixi_archive(
    path: Path | str,
    subjects: list[str],
    shape: tuple[int, int, int] = (16, 16, 8),
    corrupt: set[str] | frozenset[str] = frozenset(),
) -> str:
    """Write a tar (``.tar.gz`` if the name ends in .gz) of IXI-named T1 volumes; returns its MD5.

    Subject ``subjects[i]`` (e.g. ``IXI002``) gets ``ixi_file_name(subject, i)`` at the archive's
    top level, a ``tiny_volume(shape, seed=i)``; subjects in ``corrupt`` get a truncated gzip
    instead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "w:gz" if path.name.endswith(".gz") else "w"
    with tarfile.open(path, mode) as tar:
        for index, subject in enumerate(subjects):
            if subject in corrupt:
                content = corrupt_nifti_bytes(index)
            else:
                content = nifti_bytes(tiny_volume(shape, seed=index))
            info = tarfile.TarInfo(ixi_file_name(subject, index))
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return hashlib.md5(path.read_bytes()).hexdigest()
