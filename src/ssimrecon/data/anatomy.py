"""Real anatomy for the demo: the MNI152 2009 brain inside pydeface's head, as one template.

Sources (both read from installed wheels, neither package is imported):

* **MNI152 brain**: ``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``
  (ICBM 2009a nonlinear symmetric T1 template, 197x233x189 at 1 mm, skull-stripped: brain only,
  sharp cortical folding) and its grey-matter probability map ``..._gm_...`` from the nilearn
  0.14.1 wheel (nilearn: BSD-3-Clause; the wheel's ``datasets/description/icbm152_2009.rst``
  gives the template's licence as "unknown" and cites Fonov et al. 2009/2011 and Collins et
  al. 1999; upstream, the McConnell Brain Imaging Centre distributes it under a permissive
  copyright notice that asks for the notice to be kept and the papers cited).
* **Head**: ``pydeface/data/mean_reg2mean.nii.gz`` (pydeface 2.1.0, MIT; a mean of registered
  heads, 176x256x256 at ~1 mm: scalp, skull, face, a blurry brain).

:func:`load_composite` maps the MNI brain into pydeface's head with the fixed 9-parameter
transform :data:`MNI_TO_HEAD` (fitted by :func:`fit_mni_to_head`: rotation, log-scale,
translation maximising the normalised correlation of the two brains) and blends it over the
head's own brain with a feathered brain mask, keeping the MNI contrast.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage, optimize

from ssimrecon.errors import SsimreconError

MNI_T1 = "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
MNI_GM = "datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"
HEAD = "data/mean_reg2mean.nii.gz"
NILEARN_PIN = "nilearn==0.14.1"
PYDEFACE_PIN = "pydeface==2.1.0"
#: MNI world (mm) -> head world (mm): rotation (deg about x, y, z), log-scale (x, y, z),
#: translation (mm), about the MNI brain's centroid; from ``fit_mni_to_head()`` (NCC 0.62).
MNI_TO_HEAD = (6.81, 1.04, -3.84, -0.13, -0.11, -0.21, -5.59, 17.08, -6.74)
BRAIN_THRESHOLD = 5.0  # MNI template units (0..255): voxels above it are brain
FEATHER_MM = 1.5  # Gaussian sigma of the blend between MNI brain and head


def package_file(package: str, relative: str, pin: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SsimreconError(
            f"the demo data needs {package}'s {relative} (pip install --no-deps {pin})"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise SsimreconError(f"the demo data needs {path} (pip install --no-deps {pin})")
    return path


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.get_fdata(dtype=np.float32)), img.affine.copy()


def rotation(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) from Euler angles (degrees) about x, y, z (applied x first)."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _brain_points(step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MNI brain voxels on every ``step``-th voxel: (world mm (N, 3), values (N,), centroid)."""
    mni, mni_affine = _load(package_file("nilearn", MNI_T1, NILEARN_PIN))
    idx = np.argwhere(mni[::step, ::step, ::step] > BRAIN_THRESHOLD) * step
    world = nib.affines.apply_affine(mni_affine, idx)
    return world, mni[tuple(idx.T)], world.mean(axis=0)


def mni_to_head_matrix(params: tuple[float, ...] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A (3, 3), t (3,)) of the transform ``head = (mni - centroid) @ A.T + centroid + t``."""
    p = np.asarray(params, dtype=float)
    return rotation(p[:3]) @ np.diag(np.exp(p[3:6])), p[6:9]


def alignment_score(params: tuple[float, ...] | np.ndarray, step: int = 3) -> float:
    """Normalised correlation of MNI brain voxels with the (smoothed) head at ``params``."""
    world, values, centroid = _brain_points(step)
    head, head_affine = _load(package_file("pydeface", HEAD, PYDEFACE_PIN))
    return _ncc(params, world, values, centroid, ndimage.gaussian_filter(head, 1.0), head_affine)


def _ncc(params, world, values, centroid, head, head_affine) -> float:
    a, t = mni_to_head_matrix(params)
    moved = (world - centroid) @ a.T + centroid + t
    vox = nib.affines.apply_affine(np.linalg.inv(head_affine), moved)
    sampled = ndimage.map_coordinates(head, vox.T, order=1, mode="constant")
    x, y = values - values.mean(), sampled - sampled.mean()
    return float(x @ y / np.sqrt((x @ x) * (y @ y) + 1e-12))


def fit_mni_to_head(step: int = 3) -> np.ndarray:
    """Refit :data:`MNI_TO_HEAD` (about a minute): Powell search from the heads' centroid offset."""
    world, values, centroid = _brain_points(step)
    head, head_affine = _load(package_file("pydeface", HEAD, PYDEFACE_PIN))
    smooth = ndimage.gaussian_filter(head, 1.0)
    head_world = nib.affines.apply_affine(head_affine, np.argwhere(head > 0.1 * head.max()))
    start = np.zeros(9)
    start[6:9] = head_world.mean(axis=0) - centroid + np.array([0.0, 0.0, 10.0])
    result = optimize.minimize(
        lambda p: -_ncc(p, world, values, centroid, smooth, head_affine),
        start,
        method="Powell",
        options={"xtol": 1e-2, "ftol": 1e-4, "maxfev": 3000},
    )
    return result.x


@lru_cache(maxsize=1)
def load_composite() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The demo template on pydeface's grid: (T1 float32 (176, 256, 256) in ~0..650, grey-matter
    probability float32 (same shape, 0..1, 0 outside the brain), affine (4, 4), head bounding box
    (2, 3) in world mm)."""
    head, head_affine = _load(package_file("pydeface", HEAD, PYDEFACE_PIN))
    mni_path = package_file("nilearn", MNI_T1, NILEARN_PIN)
    mni, mni_affine = _load(mni_path)
    gm, _ = _load(package_file("nilearn", MNI_GM, NILEARN_PIN))
    _, _, centroid = _brain_points(3)
    a, t = mni_to_head_matrix(MNI_TO_HEAD)

    # head voxel -> head world -> MNI world (inverse transform) -> MNI voxel, separably affine
    head_to_mni_world = np.eye(4)
    head_to_mni_world[:3, :3] = np.linalg.inv(a)
    head_to_mni_world[:3, 3] = centroid - np.linalg.inv(a) @ (centroid + t)
    vox = np.linalg.inv(mni_affine) @ head_to_mni_world @ head_affine
    brain = ndimage.affine_transform(mni, vox, output_shape=head.shape, order=1, cval=0.0)
    grey = ndimage.affine_transform(gm, vox, output_shape=head.shape, order=1, cval=0.0)

    mask = ndimage.binary_fill_holes(brain > BRAIN_THRESHOLD)
    weight = ndimage.gaussian_filter(mask.astype(np.float32), FEATHER_MM)
    core = ndimage.binary_erosion(mask, iterations=3)
    # MNI contrast, scaled so that bright white matter matches the head's brightest brain tissue
    gain = np.percentile(head[core], 99) / max(np.percentile(brain[core], 99), 1e-6)
    t1 = weight * brain * np.float32(gain) + (1 - weight) * head
    grey = np.where(mask, np.clip(grey, 0.0, 1.0), 0.0).astype(np.float32)
    box_vox = np.argwhere(t1 > 0.1 * t1.max())
    box = nib.affines.apply_affine(head_affine, box_vox)
    return (
        np.ascontiguousarray(t1, dtype=np.float32),
        grey,
        head_affine,
        np.stack([box.min(axis=0), box.max(axis=0)]),
    )
