"""An IXI-like demo archive: pseudo-subjects with real anatomy (see :mod:`ssimrecon.data.anatomy`).

Each subject is the demo template (the MNI152 2009a brain from the nilearn wheel inside pydeface's
head; licences in :mod:`ssimrecon.data.anatomy` and README) under variation a network has to
survive on real scans:

* deformation: a random affine (rotation up to 8 degrees, scale 0.92-1.08 per axis, shift up to
  5 mm) and a smooth elastic warp (cubic B-spline of 5x5x5 control points, sd 2 mm);
* contrast: grey matter darker or brighter against white matter (a T1-weighting change, factor
  1 + k * P(grey matter), k in -0.25..0.10) and a gamma of 0.75-1.35;
* a smooth multiplicative bias field of peak amplitude 0.10-0.30;
* Rician noise of sd 0.005-0.03 of the white-matter intensity;
* voxel size: the nominal voxel (field of view / ``shape``) times 0.9-1.3 per axis, so 0.9-1.3 mm
  for ``shape`` [224, 208, 184] (the field of view 224 x 208 x 184 mm, A-P x S-I x L-R);
* storage orientation: one of :data:`ORIENTATIONS` (IXI sagittal P,S,R; axial R,A,S and L,P,S;
  coronal L,I,P); QC and preprocessing reorient every volume to RAS.

Volumes are int16 in about 0..1000 with IXI-style names; the NIfTI ``descrip`` field records the
source and the drawn parameters. The tar is byte-identical for a seed on a given platform: sorted
members, mtime 0, uid/gid 0, NIfTI gzipped with mtime 0.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ssimrecon.atomic import atomic_output
from ssimrecon.checksums import file_md5
from ssimrecon.data.anatomy import load_composite, rotation
from ssimrecon.errors import SsimreconError
from ssimrecon.progress import track

log = logging.getLogger(__name__)

IXI_SHAPE = (256, 256, 150)
IXI_VOXEL = (0.9375, 0.9375, 1.2)  # IXI T1 voxel (mm): the bench's IXI-sized volume uses it
IXI_AXCODES = ("P", "S", "R")
#: the demo's field of view in mm along the IXI storage axes (A-P, S-I, L-R)
DEMO_FOV = (224.0, 208.0, 184.0)
#: storage orientations (axis codes): IXI sagittal, axial RAS and LPS, coronal
ORIENTATIONS = (("P", "S", "R"), ("R", "A", "S"), ("L", "P", "S"), ("L", "I", "P"))
VOXEL_FACTOR = (0.9, 1.3)  # per-subject voxel size / nominal voxel, drawn per axis
#: sites of the pseudo-subjects, in IXI's file-name layout (the IXI archive path is the one
#: exercised) but never a real IXI site or subject id (``DEMO0NN``), so no figure can
#: pass them off as IXI
SITES = ("SynthA", "SynthB", "SynthC")
SUBJECT_PREFIX = "DEMO"
SOURCE = "mni152-2009a brain in pydeface head"
COARSE_STEP = 8  # voxels between nodes of the coarse grid on which the warp and bias are evaluated


def storage_affine(
    shape: tuple[int, int, int],
    voxel: tuple[float, float, float],
    axcodes: tuple[str, str, str] = IXI_AXCODES,
) -> np.ndarray:
    """Affine (4, 4) of a grid ``shape`` with ``voxel`` mm along its axes, axis codes ``axcodes``
    and the grid centre at world (0, 0, 0) mm."""
    ornt = nib.orientations.axcodes2ornt(axcodes)
    rot = np.zeros((3, 3))
    for axis, (world_axis, sign) in enumerate(ornt):
        rot[int(world_axis), axis] = sign * voxel[axis]
    affine = np.eye(4)
    affine[:3, :3] = rot
    affine[:3, 3] = -rot @ ((np.asarray(shape, dtype=float) - 1) / 2)
    return affine


def subject_names(n_subjects: int, rng: np.random.Generator) -> list[str]:
    """Sorted IXI-style file names ``DEMO0NN-Synth<A|B|C>-NNNN-T1.nii.gz`` with distinct subject
    numbers."""
    pool = np.arange(2, 100) if n_subjects <= 98 else np.arange(2, 1000)
    if n_subjects > pool.size:
        raise SsimreconError(f"demo archive: at most {pool.size} subjects, asked for {n_subjects}")
    numbers = np.sort(rng.choice(pool, size=n_subjects, replace=False))
    sites = rng.choice(len(SITES), size=n_subjects)
    sessions = rng.integers(500, 1300, size=n_subjects)
    return [
        f"{SUBJECT_PREFIX}{num:03d}-{SITES[s]}-{sess:04d}-T1.nii.gz"
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
    shape: tuple[int, int, int],
    voxel: tuple[float, float, float],
    rng: np.random.Generator,
    axcodes: tuple[str, str, str] = IXI_AXCODES,
    params: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One pseudo-subject on a grid ``shape`` (voxels along the storage axes) of ``voxel`` mm with
    axis codes ``axcodes``: (int16 volume in ~0..1000, affine (4, 4)). Contrast, bias and noise
    are ``params`` (:func:`draw_appearance`; drawn from ``rng`` after the warp if None)."""
    template, grey, tmpl_affine, head_box = load_composite()
    affine = storage_affine(shape, voxel, axcodes)
    coarse_shape = tuple(max(2, int(np.ceil((n - 1) / COARSE_STEP)) + 1) for n in shape)

    # Coarse nodes: voxel positions, world positions (mm) and unit-cube positions.
    axes = [np.linspace(0, n - 1, m) for n, m in zip(shape, coarse_shape)]
    ijk = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)  # (m0, m1, m2, 3)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    unit = ijk / np.maximum(np.asarray(shape) - 1, 1)

    # Place the head: centred left-right and front-back, top of the skull 12 mm below the top of
    # the field of view (S-I extent from the affine, whatever the storage order).
    fov = np.abs(affine[:3, :3]) @ (np.asarray(shape) - 1.0)
    centre = head_box.mean(axis=0)
    centre[2] = head_box[1, 2] + 12.0 - fov[2] / 2
    linear = rotation(rng.uniform(-8, 8, size=3)) @ np.diag(rng.uniform(0.92, 1.08, size=3))
    shift = rng.uniform(-5, 5, size=3)
    control = rng.normal(0.0, 2.0, size=(3, 5, 5, 5))  # mm at 5x5x5 control points
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
    inverse = np.linalg.inv(tmpl_affine)
    source_vox = source_world @ inverse[:3, :3].T + inverse[:3, 3]
    if params is None:
        params = draw_appearance(rng)
    bias = 1.0 + params["bias"] * _smooth_field(rng, unit)

    coarse = np.concatenate([np.moveaxis(source_vox, -1, 0), bias[None]], axis=0)
    fine = _upsample(coarse, shape)  # (4, n0, n1, n2): template voxel coordinates and bias
    image = ndimage.map_coordinates(
        template, fine[:3], order=1, mode="constant", cval=0.0, output=np.float32
    )
    grey_here = ndimage.map_coordinates(
        grey, fine[:3], order=1, mode="constant", cval=0.0, output=np.float32
    )
    image *= 1.0 + np.float32(params["grey"]) * grey_here  # grey/white contrast (T1 weighting)
    del grey_here
    image *= fine[3]
    del fine

    robust_max = float(np.percentile(image[image > 0.1 * image.max()], 99.5))
    image /= np.float32(robust_max)
    np.clip(image, 0.0, None, out=image)
    image **= np.float32(params["gamma"])
    sigma = np.float32(params["noise"])
    noise_re = rng.standard_normal(image.shape, dtype=np.float32) * sigma
    noise_im = rng.standard_normal(image.shape, dtype=np.float32) * sigma
    image = np.hypot(image + noise_re, noise_im)  # Rician magnitude
    image *= np.float32(rng.uniform(750, 850))
    return np.clip(np.rint(image), 0, 32767).astype(np.int16), affine


def draw_appearance(rng: np.random.Generator) -> dict[str, float]:
    """Contrast, bias and noise of one subject: bias (peak amplitude), grey (grey-matter factor k),
    gamma, noise (sd relative to white matter)."""
    return {
        "bias": float(rng.uniform(0.10, 0.30)),
        "grey": float(rng.uniform(-0.25, 0.10)),
        "gamma": float(rng.uniform(0.75, 1.35)),
        "noise": float(rng.uniform(0.005, 0.03)),
    }


def describe(params: dict[str, float]) -> str:
    """The NIfTI ``descrip`` of a pseudo-subject (at most 80 characters): source and parameters."""
    text = "demo: {} g{:.2f} c{:+.2f} b{:.2f} n{:.3f}".format(
        SOURCE, params["gamma"], params["grey"], params["bias"], params["noise"]
    )
    return text[:80]


def nifti_gz_bytes(
    data: np.ndarray, affine: np.ndarray, compresslevel: int = 4, descrip: str = ""
) -> bytes:
    """NIfTI-1 .nii.gz bytes with qform/sform = ``affine`` (code 1, mm), ``descrip``, gzip mtime 0
    and no file name."""
    img = nib.Nifti1Image(data, affine)
    img.header["descrip"] = descrip.encode("ascii")[:80]
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


def subject_grid(
    shape: tuple[int, int, int], voxel: tuple[float, float, float], rng: np.random.Generator
) -> tuple[tuple[int, int, int], tuple[float, float, float], tuple[str, str, str]]:
    """One subject's storage grid: (shape, voxel mm, axis codes). The field of view ``shape *
    voxel`` (along the IXI axes A-P, S-I, L-R) is kept; each axis's voxel is the nominal one times
    a factor in :data:`VOXEL_FACTOR`; the storage order follows the drawn orientation."""
    fov = np.asarray(shape, dtype=float) * np.asarray(voxel, dtype=float)
    factors = rng.uniform(*VOXEL_FACTOR, size=3)
    axcodes = ORIENTATIONS[int(rng.integers(len(ORIENTATIONS)))]
    ixi_world = [int(w) for w, _ in nib.orientations.axcodes2ornt(IXI_AXCODES)]  # [1, 2, 0]
    out_shape, out_voxel = [], []
    for world_axis, _ in nib.orientations.axcodes2ornt(axcodes):
        ixi_axis = ixi_world.index(int(world_axis))
        size = float(voxel[ixi_axis] * factors[ixi_axis])
        out_voxel.append(round(size, 4))
        out_shape.append(max(2, int(round(fov[ixi_axis] / size))))
    return tuple(out_shape), tuple(out_voxel), axcodes


def build_demo_archive(
    output_tar: str | os.PathLike,
    n_subjects: int,
    seed: int,
    shape: tuple[int, int, int] = IXI_SHAPE,
    voxel: tuple[float, float, float] | None = None,
) -> str:
    """Write the demo tar (and ``<output_tar>.md5`` in md5sum format); return its MD5 hex digest.

    ``shape`` (A-P, S-I, L-R voxels) and ``voxel`` give the nominal grid; ``voxel=None`` spreads
    ``shape`` over :data:`DEMO_FOV` (1 mm for ``shape`` [224, 208, 184]). Each subject keeps the
    field of view with its own voxel size and storage orientation (:func:`subject_grid`).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 2:
        raise SsimreconError(f"demo archive: shape must be three integers >= 2, got {shape}")
    if n_subjects < 1:
        raise SsimreconError(f"demo archive: need at least one subject, got {n_subjects}")
    if voxel is None:
        voxel = tuple(f / s for f, s in zip(DEMO_FOV, shape))
    voxel = tuple(float(v) for v in voxel)
    output_tar = Path(output_tar)
    md5_path = output_tar.with_name(output_tar.name + ".md5")
    names = subject_names(n_subjects, np.random.default_rng(seed))
    # the inner context exits first: the tar is renamed into place, then its .md5 (the tar is
    # big: no fsync)
    with atomic_output(md5_path) as tmp_md5, atomic_output(output_tar, fsync=False) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i, name in enumerate(track(names, "demo subjects", "subject")):
                rng = np.random.default_rng([seed, i])
                grid, size, axcodes = subject_grid(shape, voxel, rng)
                params = draw_appearance(rng)
                data, affine = synth_subject(grid, size, rng, axcodes, params)
                blob = nifti_gz_bytes(data, affine, descrip=describe(params))
                tar.addfile(_tarinfo(name, len(blob)), io.BytesIO(blob))
                log.info(
                    "demo subject %s: %s voxels of %s mm, %s; %s",
                    name,
                    "x".join(map(str, grid)),
                    "x".join(f"{v:g}" for v in size),
                    "".join(axcodes),
                    describe(params),
                )
        digest = file_md5(tmp)
        tmp_md5.write_text(f"{digest}  {output_tar.name}\n")
    return digest
