"""Geometry and intensities of ``reconstruct``: any T1 volume onto the training grid and back.

The training grid (model bundle key ``grid``, :func:`training_grid`): RAS orientation, slices along
``readout_axis``, in-plane pixels of ``pixel_spacing_mm`` [mm along H, mm along W].

Forward (:func:`to_training_grid`): the RAS array (``nibabel.as_closest_canonical``: axis
permutations and flips only, so an oblique acquisition stays in its own voxel grid) has its readout
axis moved to the front; the two in-plane axes are resampled to the training pixel size by linear
interpolation about the centre of the field of view, after a Gaussian anti-aliasing filter when
downsampling (sigma = (factor - 1) / 2 input voxels, as ``skimage.transform.rescale``). The readout
axis keeps the input's own slices: the network is 2D, so every input slice is reconstructed where it
lies and nothing is interpolated through-plane. Back (:func:`from_training_grid`): the exact inverse
coordinate map, linear interpolation, onto the input's own voxel grid.

Each slice then sits in a frame (:func:`frame_window`): the training ``image_size`` when the slice
or at least its signal fits (only background is cropped), else the whole slice padded to the next
multiple of 2**depth, with the training mask scaled onto it (:func:`scaled_mask`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ssimrecon.errors import CheckpointError
from ssimrecon.kspace.preprocess import Preprocessing

log = logging.getLogger(__name__)

#: relative difference of voxel sizes below which no resampling is done
SAME_SPACING = 1e-3
#: percentile of a volume with negative values taken as its background level
BACKGROUND_PERCENTILE = 1.0


@dataclass(frozen=True)
class TrainingGrid:
    """The grid of the slices a network was trained on (all in the RAS array of the volumes)."""

    readout_axis: int  # RAS axis the slices are taken along
    pixel_spacing_mm: tuple[float, float]  # mm along the slice rows (H) and columns (W)
    slice_thickness_mm: float | None  # voxel size along the readout axis; None when unknown
    recorded: bool  # False: an older bundle, grid inferred from the input (see training_grid)


def in_plane(values: tuple[float, float, float], readout_axis: int) -> tuple[float, float]:
    """The two entries of a per-RAS-axis triple that are not ``readout_axis`` (H, W order)."""
    first, second = (v for i, v in enumerate(values) if i != readout_axis)
    return float(first), float(second)


def training_grid(
    bundle: dict[str, Any], input_voxel_ras: tuple[float, float, float], model_path: Path
) -> TrainingGrid:
    """The bundle's recorded grid; for a bundle written before grids were recorded, a warning and
    the input's in-plane voxel size times ``preprocessing.downsample`` (what older versions did)."""
    prep = Preprocessing.from_dict(bundle["preprocessing"])
    record = bundle.get("grid")
    if record is None:
        log.warning(
            "model %s records no training grid (written by an older ssimrecon): assuming the "
            "input's voxel size times preprocessing.downsample; retrain for resampling in mm",
            model_path,
        )
        dy, dx = in_plane(input_voxel_ras, prep.readout_axis)
        d = float(prep.downsample)
        return TrainingGrid(prep.readout_axis, (dy * d, dx * d), None, recorded=False)
    try:
        spacing = tuple(float(v) for v in record["pixel_spacing_mm"])
        thickness = record.get("slice_thickness_mm")
        grid = TrainingGrid(
            int(record["readout_axis"]),
            (spacing[0], spacing[1]),
            None if thickness is None else float(thickness),
            recorded=True,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{model_path}: bad grid record {record!r} ({exc})") from None
    if record.get("orientation") != "RAS" or grid.readout_axis not in (0, 1, 2):
        raise CheckpointError(f"{model_path}: bad grid record {record!r}")
    if len(spacing) != 2 or not all(math.isfinite(v) and v > 0 for v in spacing):
        raise CheckpointError(f"{model_path}: grid pixel_spacing_mm must be two positive mm values")
    return grid


def background_offset(volume: np.ndarray) -> float:
    """Intensity subtracted before scaling: 0 for a volume without negative values, else its
    ``BACKGROUND_PERCENTILE``-th percentile if that is negative (the background level of e.g. a
    z-scored volume), else 0 (a few negative noise voxels are then clipped)."""
    if float(volume.min()) >= 0:
        return 0.0
    return min(0.0, float(np.percentile(volume, BACKGROUND_PERCENTILE)))


def _axis_map(n_in: int, spacing_in: float, spacing_out: float) -> tuple[int, float, float]:
    """(n_out, step, start): output sample i lies at input index ``start + step * i``; the two
    grids share the centre of the field of view."""
    n_out = max(1, int(round(n_in * spacing_in / spacing_out)))
    step = spacing_out / spacing_in
    return n_out, step, (n_in - 1) / 2 - step * (n_out - 1) / 2


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(abs(x - y) <= SAME_SPACING * y for x, y in zip(a, b))


def resample(
    array: np.ndarray, spacing_in: Sequence[float], spacing_out: Sequence[float]
) -> np.ndarray:
    """An array of ``spacing_in`` (mm per axis) on the grid of ``spacing_out`` about the same
    centre, float32: Gaussian anti-aliasing where coarser, then linear interpolation."""
    array = np.asarray(array, dtype=np.float32)
    if _same(spacing_in, spacing_out):
        return array.copy()
    maps = [_axis_map(n, si, so) for n, si, so in zip(array.shape, spacing_in, spacing_out)]
    sigma = [max(0.0, (step - 1) / 2) for _, step, _ in maps]
    if max(sigma) > 0:
        array = ndimage.gaussian_filter(array, sigma=sigma, mode="nearest")
    return ndimage.affine_transform(
        array,
        matrix=[step for _, step, _ in maps],
        offset=[start for _, _, start in maps],
        output_shape=tuple(n for n, _, _ in maps),
        order=1,
        mode="nearest",
    ).astype(np.float32, copy=False)


def resampled_affine(
    affine: np.ndarray,
    shape: Sequence[int],
    spacing_in: Sequence[float],
    spacing_out: Sequence[float],
) -> np.ndarray:
    """The affine of :func:`resample`'s output for an input of ``shape`` with ``affine``."""
    maps = [_axis_map(n, si, so) for n, si, so in zip(shape, spacing_in, spacing_out)]
    index = np.eye(4)
    index[:3, :3] = np.diag([step for _, step, _ in maps])
    index[:3, 3] = [start for _, _, start in maps]
    return np.asarray(affine, dtype=np.float64) @ index


def to_training_grid(
    moved: np.ndarray, spacing_in: tuple[float, float], spacing_out: tuple[float, float]
) -> np.ndarray:
    """Slices (S, h, w) of ``spacing_in`` mm -> (S, h', w') float32 of ``spacing_out`` mm (the
    slice axis untouched)."""
    return resample(moved, (1.0, *spacing_in), (1.0, *spacing_out))


def from_training_grid(
    slices: np.ndarray,
    shape: tuple[int, int],
    spacing_in: tuple[float, float],
    spacing_out: tuple[float, float],
) -> np.ndarray:
    """Inverse of :func:`to_training_grid`: (S, h', w') of ``spacing_out`` mm -> (S, *shape) of
    ``spacing_in`` mm (the input's grid), float32, linear interpolation."""
    slices = np.asarray(slices, dtype=np.float32)
    if _same(spacing_in, spacing_out):
        return slices.copy()
    maps = [_axis_map(n, si, so) for n, si, so in zip(shape, spacing_in, spacing_out)]
    # input index j lies at training index (j - start) / step
    return ndimage.affine_transform(
        slices,
        matrix=[1.0] + [1 / step for _, step, _ in maps],
        offset=[0.0] + [-start / step for _, step, start in maps],
        output_shape=(slices.shape[0], *shape),
        order=1,
        mode="nearest",
    ).astype(np.float32, copy=False)


def frame_window(
    signal: np.ndarray, image_size: tuple[int, int], multiple: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(frame (H, W), start (row, col)) of the network's frame over slices whose signal pixels
    are ``signal`` (h', w') bool. Per axis: the training ``image_size`` centred on the slice if the
    slice fits; else ``image_size`` over the signal's bounding box if that fits (only background is
    cropped); else the whole slice, padded to the next multiple of ``multiple``."""
    frame, start = [], []
    for axis, size in enumerate(image_size):
        n = signal.shape[axis]
        hits = np.flatnonzero(signal.any(axis=1 - axis))
        lo, hi = (int(hits[0]), int(hits[-1]) + 1) if hits.size else (0, n)
        if n <= size:
            side, first = int(size), -((int(size) - n) // 2)
        elif hi - lo <= size:
            side, first = int(size), min(max((lo + hi) // 2 - int(size) // 2, 0), n - int(size))
        else:
            side = math.ceil(n / multiple) * multiple
            first = -((side - n) // 2)
        frame.append(side)
        start.append(first)
    return (frame[0], frame[1]), (start[0], start[1])


def _overlap(n: int, start: int, side: int) -> tuple[slice, slice]:
    """Slices (in the array of length n, in the frame) of the overlap of [start, start+side)."""
    lo, hi = max(0, start), min(n, start + side)
    return slice(lo, max(lo, hi)), slice(lo - start, max(lo, hi) - start)


def cut_frame(slices: np.ndarray, frame: tuple[int, int], start: tuple[int, int]) -> np.ndarray:
    """(S, h', w') -> (S, *frame) float32: the window at ``start``, zero outside the slices."""
    out = np.zeros((slices.shape[0], *frame), dtype=np.float32)
    (ay, fy), (ax, fx) = (_overlap(n, s, f) for n, s, f in zip(slices.shape[1:], start, frame))
    out[:, fy, fx] = slices[:, ay, ax]
    return out


def paste_frame(framed: np.ndarray, shape: tuple[int, int], start: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`cut_frame`: (S, H, W) -> (S, *shape) float32, zero outside the window."""
    out = np.zeros((framed.shape[0], *shape), dtype=np.float32)
    (ay, fy), (ax, fx) = (_overlap(n, s, f) for n, s, f in zip(shape, start, framed.shape[1:]))
    out[:, ay, ax] = framed[:, fy, fx]
    return out


def scaled_mask(mask: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    """The (H, W) training mask on a larger (H', W') k-space grid: nearest sample in normalised
    k-space (the DC sample H // 2 maps to H' // 2), so the sampling density and acceleration stay
    those of training."""
    if tuple(mask.shape) == tuple(frame):
        return mask.copy()
    index = [
        np.clip(np.round((np.arange(f) - f // 2) * n / f).astype(int) + n // 2, 0, n - 1)
        for n, f in zip(mask.shape, frame)
    ]
    return mask[np.ix_(index[0], index[1])]
