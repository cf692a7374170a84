"""An IXI-shaped demo archive: pseudo-subjects resampled from pydeface's template head (~1 mm,
176x256x256).

Each subject is the template under a small random affine (rotation, +-5 % scale, shift) and a smooth
elastic deformation, resampled onto an IXI T1-like grid (default 256x256x150, 0.9375x0.9375x1.2 mm,
axis codes P, S, R: sagittal slices along the 3rd axis), times a smooth bias field, with a contrast
gamma and Rician noise, stored as int16 (about 0..1000). The tar is byte-identical for a seed on a
given platform: sorted members, mtime 0, uid/gid 0, NIfTI gzipped with mtime 0.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import tarfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from ssimrecon.atomic import atomic_output
from ssimrecon.checksums import file_md5
from ssimrecon.errors import SsimreconError

log = logging.getLogger(__name__)

IXI_SHAPE = (256, 256, 150)
IXI_VOXEL = (0.9375, 0.9375, 1.2)
IXI_AXCODES = ("P", "S", "R")
SITES = ("Guys", "HH", "IOP")
TEMPLATE_RESOURCE = "data/mean_reg2mean.nii.gz"
COARSE_STEP = (
    8  # voxels between nodes of the coarse grid on which the warp and the bias are evaluated
)


@lru_cache(maxsize=1)
def load_template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pydeface's mean head: (data float32 (176, 256, 256), affine (4, 4), head bounding box (2, 3)
    in mm)."""
    try:
        path = resources.files("pydeface") / TEMPLATE_RESOURCE
        img = nib.load(str(path))
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise SsimreconError(
            f"the demo data needs pydeface's template {TEMPLATE_RESOURCE} "
            f"(pip install --no-deps pydeface==2.1.0): {exc}"
        ) from exc
    data = np.asarray(img.get_fdata(dtype=np.float32))
    head = np.argwhere(data > 0.1 * data.max())
    world = nib.affines.apply_affine(img.affine, head)
    return np.ascontiguousarray(data), img.affine.copy(), np.stack([world.min(0), world.max(0)])


def ixi_affine(shape: tuple[int, int, int], voxel: tuple[float, float, float]) -> np.ndarray:
    """Affine with axis codes (P, S, R) and the grid centre at world (0, 0, 0) mm."""
    rot = np.array([[0.0, 0.0, voxel[2]], [-voxel[0], 0.0, 0.0], [0.0, voxel[1], 0.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot
    affine[:3, 3] = -rot @ ((np.asarray(shape, dtype=float) - 1) / 2)
    return affine


def subject_names(n_subjects: int, rng: np.random.Generator) -> list[str]:
    """Sorted IXI-style file names ``IXI0NN-<Site>-NNNN-T1.nii.gz`` with distinct subject
    numbers."""
    pool = np.arange(2, 100) if n_subjects <= 98 else np.arange(2, 1000)
    if n_subjects > pool.size:
        raise SsimreconError(f"demo archive: at most {pool.size} subjects, asked for {n_subjects}")
    numbers = np.sort(rng.choice(pool, size=n_subjects, replace=False))
    sites = rng.choice(len(SITES), size=n_subjects)
    sessions = rng.integers(500, 1300, size=n_subjects)
    return [
        f"IXI{num:03d}-{SITES[s]}-{sess:04d}-T1.nii.gz"
        for num, s, sess in zip(numbers, sites, sessions)
    ]


def _interp_matrix(n: int, m: int) -> np.ndarray:
    """(n, m) float32 linear interpolation from m nodes spread evenly over positions 0..n-1."""
    pos = np.linspace(0.0, m - 1.0, n) if n > 1 else np.zeros(1)
    lo = np.clip(np.floor(pos).astype(int), 0, max(m - 2, 0))
    frac = pos - lo
    w = np.zeros((n, m), dtype=np.float32)
    w[np.arange(n), lo] += (1 - frac).astype(np.float32)
    if m > 1:
        w[np.arange(n), lo + 1] += frac.astype(np.float32)
    return w


def _upsample(coarse: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Separable trilinear upsampling (C, m0, m1, m2) -> (C, n0, n1, n2) float32 with three
    matmuls."""
    c, m0, m1, m2 = coarse.shape
    n0, n1, n2 = shape
    w0, w1, w2 = (_interp_matrix(n, m) for n, m in zip(shape, (m0, m1, m2)))
    x = np.matmul(w0, coarse.astype(np.float32).reshape(c, m0, m1 * m2)).reshape(c, n0, m1, m2)
    x = np.matmul(w1, x)  # (n1, m1) @ (c, n0, m1, m2) -> (c, n0, n1, m2)
    x = x.reshape(c * n0 * n1, m2) @ w2.T
    return x.reshape(c, n0, n1, n2)


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation matrix from Euler angles (degrees) about x, y, z."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _smooth_field(rng: np.random.Generator, unit: np.ndarray, n_terms: int = 4) -> np.ndarray:
    """Random low-frequency field on points ``unit`` (..., 3) in [0, 1]^3, scaled to peak |value|
    1."""
    field = np.zeros(unit.shape[:-1])
    for _ in range(n_terms):
        freq = rng.uniform(-1.0, 1.0, size=3)
        field += rng.uniform(0.5, 1.0) * np.cos(
            2 * np.pi * (unit @ freq) + rng.uniform(0, 2 * np.pi)
        )
    return field / max(np.abs(field).max(), 1e-12)


def synth_subject(
    shape: tuple[int, int, int], voxel: tuple[float, float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One pseudo-subject: (int16 volume ``shape`` in ~0..1000, affine with axis codes P, S, R)."""
    template, tmpl_affine, head_box = load_template()
    affine = ixi_affine(shape, voxel)
    coarse_shape = tuple(max(2, int(np.ceil((n - 1) / COARSE_STEP)) + 1) for n in shape)

    # Coarse nodes: voxel positions, world positions (mm) and unit-cube positions.
    axes = [np.linspace(0, n - 1, m) for n, m in zip(shape, coarse_shape)]
    ijk = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)  # (m0, m1, m2, 3)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    unit = ijk / np.maximum(np.asarray(shape) - 1, 1)

    # Place the head: centred left-right and front-back, top of the skull 10 mm below the
    # field of view.
    fov = np.abs(affine[:3, :3]) @ (np.asarray(shape) - 1.0)
    centre = head_box.mean(axis=0)
    centre[2] = head_box[1, 2] + 10.0 - fov[2] / 2
    # Random affine (rotation few degrees, scale +-5 %, shift few mm) plus smooth elastic warp
    # (few mm).
    linear = _rotation(rng.uniform(-4, 4, size=3)) @ np.diag(rng.uniform(0.95, 1.05, size=3))
    shift = rng.uniform(-4, 4, size=3)
    control = rng.normal(
        0.0, 1.5, size=(3, 5, 5, 5)
    )  # mm at 5x5x5 control points over the field of view
    disp = np.stack(
        [
            ndimage.map_coordinates(
                control[c], np.moveaxis(unit * 4, -1, 0), order=3, mode="nearest"
            )
            for c in range(3)
        ],
        axis=-1,
    )
    source_world = world @ linear.T + centre + shift + disp
    source_vox = (
        source_world @ np.linalg.inv(tmpl_affine)[:3, :3].T + np.linalg.inv(tmpl_affine)[:3, 3]
    )
    bias = 1.0 + rng.uniform(0.08, 0.15) * _smooth_field(rng, unit)

    coarse = np.concatenate([np.moveaxis(source_vox, -1, 0), bias[None]], axis=0)
    fine = _upsample(coarse, shape)  # (4, n0, n1, n2): template voxel coordinates and bias
    image = ndimage.map_coordinates(
        template, fine[:3], order=1, mode="constant", cval=0.0, output=np.float32
    )
    image *= fine[3]
    del fine

    robust_max = float(np.percentile(image[image > 0.1 * image.max()], 99.5))
    image /= np.float32(robust_max)
    np.clip(image, 0.0, None, out=image)
    image **= np.float32(rng.uniform(0.85, 1.15))  # contrast gamma
    sigma = np.float32(rng.uniform(0.01, 0.02))
    noise_re = rng.standard_normal(image.shape, dtype=np.float32) * sigma
    noise_im = rng.standard_normal(image.shape, dtype=np.float32) * sigma
    image = np.hypot(image + noise_re, noise_im)  # Rician magnitude
    image *= np.float32(rng.uniform(750, 850))
    return np.clip(np.rint(image), 0, 32767).astype(np.int16), affine


def nifti_gz_bytes(data: np.ndarray, affine: np.ndarray, compresslevel: int = 4) -> bytes:
    """NIfTI-1 .nii.gz bytes with qform/sform = ``affine`` (code 1, mm), gzip mtime 0 and no file
    name."""
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    buf = io.BytesIO()
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=compresslevel
    ) as gz:
        gz.write(img.to_bytes())
    return buf.getvalue()


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_demo_archive(
    output_tar: str | os.PathLike,
    n_subjects: int,
    seed: int,
    shape: tuple[int, int, int] = IXI_SHAPE,
    voxel: tuple[float, float, float] | None = None,
) -> str:
    """Write the demo tar (and ``<output_tar>.md5`` in md5sum format); return its MD5 hex digest.

    ``voxel=None`` keeps the IXI field of view (240 x 240 x 180 mm), i.e. 0.9375 x 0.9375 x 1.2 mm
    at the default shape and proportionally coarser for small test shapes, so the whole head is
    always in view.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 2:
        raise SsimreconError(f"demo archive: shape must be three integers >= 2, got {shape}")
    if n_subjects < 1:
        raise SsimreconError(f"demo archive: need at least one subject, got {n_subjects}")
    if voxel is None:
        voxel = tuple(v * n / s for v, n, s in zip(IXI_VOXEL, IXI_SHAPE, shape))
    voxel = tuple(float(v) for v in voxel)
    output_tar = Path(output_tar)
    md5_path = output_tar.with_name(output_tar.name + ".md5")
    names = subject_names(n_subjects, np.random.default_rng(seed))
    # the inner context exits first: the tar is renamed into place, then its .md5 (the tar is
    # big: no fsync)
    with atomic_output(md5_path) as tmp_md5, atomic_output(output_tar, fsync=False) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i, name in enumerate(
                tqdm(names, desc="demo subjects", unit="subject", disable=None)
            ):
                data, affine = synth_subject(shape, voxel, np.random.default_rng([seed, i]))
                blob = nifti_gz_bytes(data, affine)
                tar.addfile(_tarinfo(name, len(blob)), io.BytesIO(blob))
                log.info(
                    "demo subject %s: %s voxels of %s mm",
                    name,
                    "x".join(map(str, shape)),
                    "x".join(f"{v:g}" for v in voxel),
                )
        digest = file_md5(tmp)
        tmp_md5.write_text(f"{digest}  {output_tar.name}\n")
    return digest
