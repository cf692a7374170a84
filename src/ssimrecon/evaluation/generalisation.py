"""The held-out real T1 volumes of ``make generalisation``: heads the demo never sees.

Sources (:func:`default_sources`), both real single-subject T1 heads:

- ``colin27``: Colin27 "ch2" (Holmes et al. 1998, the MNI single-subject template; 1 mm RAS uint8
  181 x 217 x 181) from Debian's ``mricron-data`` (``/usr/share/mricron/templates/ch2.nii.gz``,
  MRIcron's BSD-3-clause licence);
- ``nibabel_anatomical``: nibabel's test volume ``nibabel/tests/data/anatomical.nii`` (2 mm LAS
  int16 33 x 41 x 25, MIT licence), copied as it is.

Colin27 also gives variants that mimic other scanners and pipelines (:data:`VARIANTS`): the file
as shipped (1 mm RAS uint8), 2 x 2 x 3 mm in LSA order as int16, 2 mm MNI-space float32 with
negative values (z-scored over the head), and 1 mm int16 with an oblique affine (the head turned
20 degrees about L-R and 10 about S-I: the same voxels, a rotated scanner frame). Resampling is
:func:`ssimrecon.evaluation.resample.resample` (anti-aliased, linear); everything is
deterministic, and ``manifest.csv`` records each file's shape, voxel size, orientation, dtype and
the MD5 of its voxel data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from ssimrecon.atomic import atomic_output, write_csv_atomic
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.resample import resample, resampled_affine

COLIN27 = Path("/usr/share/mricron/templates/ch2.nii.gz")
MANIFEST = "manifest.csv"


def default_sources() -> dict[str, Path]:
    """{"colin27": Debian's ch2.nii.gz, "nibabel_anatomical": nibabel's anatomical.nii}."""
    return {
        "colin27": COLIN27,
        "nibabel_anatomical": Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii",
    }


def _canonical(path: Path) -> nib.Nifti1Image:
    if not path.is_file():
        hint = " (apt-get install mricron-data)" if path.name.startswith("ch2") else ""
        raise SsimreconError(f"generalisation source {path} does not exist{hint}")
    return nib.as_closest_canonical(nib.load(str(path)))


def _as_uint8(image: nib.Nifti1Image) -> nib.Nifti1Image:
    data = np.asarray(image.dataobj)
    if data.dtype != np.uint8:
        data = np.clip(np.round(data * (255.0 / np.percentile(data, 99.9))), 0, 255)
    return nib.Nifti1Image(data.astype(np.uint8), image.affine)


def _lsa_2x2x3_int16(image: nib.Nifti1Image) -> nib.Nifti1Image:
    data = np.asarray(image.dataobj, dtype=np.float32)
    voxel, target = nib.affines.voxel_sizes(image.affine), (2.0, 3.0, 2.0)  # mm along R, A, S
    small = resample(data, voxel, target)
    affine = resampled_affine(image.affine, data.shape, voxel, target)
    ras = nib.Nifti1Image(np.round(small * 8).astype(np.int16), affine)
    return ras.as_reoriented(
        nib.orientations.ornt_transform(
            nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt("LSA")
        )
    )


def _mni_2mm_float_negative(image: nib.Nifti1Image) -> nib.Nifti1Image:
    data = np.asarray(image.dataobj, dtype=np.float32)
    voxel, target = nib.affines.voxel_sizes(image.affine), (2.0, 2.0, 2.0)
    small = resample(data, voxel, target)
    head = small > 0.1 * float(np.percentile(small, 99.5))
    z = (small - small[head].mean()) / small[head].std()
    return nib.Nifti1Image(
        z.astype(np.float32), resampled_affine(image.affine, data.shape, voxel, target)
    )


def _oblique_int16(image: nib.Nifti1Image) -> nib.Nifti1Image:
    data = np.asarray(image.dataobj).astype(np.int16)
    rotation = np.eye(4)
    rotation[:3, :3] = _rotation(0, 20.0) @ _rotation(2, 10.0)
    centre = image.affine @ np.r_[(np.array(data.shape) - 1) / 2, 1.0]
    shift = np.eye(4)
    shift[:3, 3] = centre[:3]
    affine = shift @ rotation @ np.linalg.inv(shift) @ image.affine  # turned about the centre
    return nib.Nifti1Image(data, affine)


def _rotation(axis: int, degrees: float) -> np.ndarray:
    """3x3 rotation by ``degrees`` about world axis ``axis``."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    out = np.eye(3)
    out[i, i], out[i, j], out[j, i], out[j, j] = c, -s, s, c
    return out


#: name -> (source key, transform of the source's RAS image or None: copied, what it mimics)
Transform = Callable[[nib.Nifti1Image], nib.Nifti1Image] | None
VARIANTS: dict[str, tuple[str, Transform, str]] = {
    "colin27_1mm_ras_uint8": ("colin27", _as_uint8, "1 mm isotropic RAS uint8 (as shipped)"),
    "colin27_2x2x3mm_lsa_int16": ("colin27", _lsa_2x2x3_int16, "2x2x3 mm (3 mm coronal), LSA"),
    "colin27_2mm_mni_float_negative": (
        "colin27",
        _mni_2mm_float_negative,
        "2 mm MNI-space float, z-scored (negative background)",
    ),
    "colin27_1mm_oblique_int16": ("colin27", _oblique_int16, "oblique affine (20 and 10 deg)"),
    "nibabel_anatomical_2mm_las_int16": ("nibabel_anatomical", None, "nibabel test volume"),
}


def _data_md5(image: nib.Nifti1Image) -> str:
    data = np.ascontiguousarray(np.asarray(image.dataobj))
    return hashlib.md5(data.tobytes() + str(data.dtype).encode()).hexdigest()


def build_generalisation_set(
    output: Path | str, sources: dict[str, Path] | None = None
) -> list[dict[str, Any]]:
    """Write every :data:`VARIANTS` volume as ``output/<name>.nii.gz`` and ``output/manifest.csv``
    -> the manifest rows (file, source, mimics, shape, voxel_mm, orientation, dtype, data_md5)."""
    output = Path(output)
    sources = default_sources() if sources is None else sources
    rows = []
    for name, (key, transform, mimics) in VARIANTS.items():
        source = Path(sources[key])
        if transform is None:
            if not source.is_file():
                raise SsimreconError(f"generalisation source {source} does not exist")
            original = nib.load(str(source))
            image = nib.Nifti1Image(np.asarray(original.dataobj), original.affine, original.header)
        else:
            image = transform(_canonical(source))
        path = output / f"{name}.nii.gz"
        with atomic_output(path, suffix=".nii.gz") as tmp:
            nib.save(image, tmp)
        rows.append(
            {
                "file": str(path),
                "source": str(source),
                "mimics": mimics,
                "shape": "x".join(map(str, image.shape)),
                "voxel_mm": "x".join(f"{v:g}" for v in nib.affines.voxel_sizes(image.affine)),
                "orientation": "".join(nib.aff2axcodes(image.affine)),
                "dtype": str(image.get_data_dtype()),
                "data_md5": _data_md5(image),
            }
        )
    write_csv_atomic(pd.DataFrame(rows), output / MANIFEST)
    return rows
