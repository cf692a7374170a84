"""Synthetic k-space shards of ellipse and phantom slices, and their masks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ssimrecon.kspace.fft import fft2c
from ssimrecon.kspace.mask import save_mask, variable_density_mask
from ssimrecon.kspace.preprocess import Preprocessing, slice_signal_fraction
from ssimrecon.kspace.shards import shard_attributes, slice_geometry, write_shard
from tests.helpers.workspace import REPO


def preprocessing(**overrides: Any) -> Preprocessing:
    """A Preprocessing with the defaults of the workflow's config schema (their one source) and
    ``overrides``."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    fields = schema["properties"]["preprocessing"]["properties"]
    values = {key: spec["default"] for key, spec in fields.items()}
    return Preprocessing.from_dict({**values, **overrides})


SIZE = 32
PREP = preprocessing(readout_axis=2, image_size=(SIZE, SIZE))


def sample_mask(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A (size, size) variable-density mask, R = 4, 6x6 fully sampled centre."""
    return variable_density_mask((size, size), 4.0, 6, seed)


def _soft_inside(q: np.ndarray) -> np.ndarray:
    """Soft indicator of q < 1 (a logistic edge of width ~1/12), for smooth ellipses."""
    return 1 / (1 + np.exp(np.clip((q - 1) * 12, -50, 50)))


def ellipse_slices(
    n_slices: int, size: int = SIZE, seed: int = 0, empty: tuple[int, ...] = ()
) -> np.ndarray:
    """(S, H, W) float32 smooth ellipses whose size varies across slices; slices in ``empty`` are
    zero."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    out = np.zeros((n_slices, size, size), dtype=np.float32)
    for s in range(n_slices):
        if s in empty:
            continue
        grow = 0.45 + 0.4 * np.sin(np.pi * (s + 0.5) / n_slices)
        cy, cx = rng.uniform(-0.1, 0.1, 2)
        r2 = ((y - cy) / (0.9 * grow)) ** 2 + ((x - cx) / (0.7 * grow)) ** 2
        inner = ((y - cy) / (0.4 * grow)) ** 2 + ((x - cx + 0.1) / (0.25 * grow)) ** 2
        img = 0.8 * _soft_inside(r2) + 0.3 * _soft_inside(inner)
        out[s] = img + 0.02 * rng.random((size, size))
    return out


def make_test_shard(
    path: Path,
    subject: str,
    *,
    n_slices: int = 6,
    seed: int = 0,
    mask: np.ndarray | None = None,
    empty: tuple[int, ...] = (0,),
    slice_index: np.ndarray | None = None,
    prep: Preprocessing = PREP,
    source_file: str = "",
    scale: float = 1.0,
) -> dict:
    """Write a shard of ellipse slices; returns its arrays (kspace = fft2c(target) * mask)."""
    mask = sample_mask() if mask is None else mask
    target = ellipse_slices(n_slices, mask.shape[0], seed, empty)
    return write_target_shard(
        path,
        target,
        mask,
        prep,
        subject=subject,
        slice_index=slice_index,
        source_file=source_file,
        scale=scale,
    )


def write_target_shard(
    path: Path,
    target: np.ndarray,
    mask: np.ndarray,
    prep: Preprocessing,
    *,
    subject: str,
    slice_index: np.ndarray | None = None,
    source_file: str = "",
    source_md5: str = "",
    scale: float = 1.0,
) -> dict:
    """Write ``target`` (S, H, W) as a shard (no phase, 1 mm pixels); returns its arrays (kspace =
    fft2c(target) * mask as a reader with ``mask`` forms it, target, mask, data_range,
    slice_index, slice_signal)."""
    n_slices = target.shape[0]
    data_range = float(target.max())
    kspace = (fft2c(target) * mask).astype(np.complex64)
    index = (
        np.arange(n_slices, dtype=np.int32)
        if slice_index is None
        else np.asarray(slice_index, np.int32)
    )
    signal = slice_signal_fraction(target, data_range)
    attrs = shard_attributes(
        subject=subject,
        scale=scale,
        data_range=data_range,
        source_file=source_file,
        source_md5=source_md5,
        prep=prep,
        geometry=slice_geometry((*target.shape[1:], n_slices), (1.0, 1.0, 1.0), prep),
    )
    write_shard(
        path,
        target=target,
        phase=None,
        slice_index=index,
        slice_signal=signal,
        attrs=attrs,
    )
    return {
        "kspace": kspace,
        "target": target,
        "mask": mask,
        "data_range": data_range,
        "slice_index": index,
        "slice_signal": signal,
    }


def phantom_slices(n: int, size: int, rng: np.random.Generator, empty: int = 0) -> np.ndarray:
    """``n`` images (n, size, size) float32: random ellipses with sharp edges and a bright square;
    the last ``empty`` slices are blank (background only)."""
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    out = np.zeros((n, size, size), dtype=np.float32)
    for i in range(n - empty):
        img = 0.6 * (((xx / rng.uniform(0.6, 0.9)) ** 2 + (yy / rng.uniform(0.6, 0.9)) ** 2) < 1)
        for _ in range(3):
            cx, cy, r = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.1, 0.3)
            img = img + rng.uniform(0.1, 0.4) * (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r)
        s0, s1 = sorted(rng.integers(size // 4, 3 * size // 4, size=2))
        img[s0 : s1 + 2, s0 : s1 + 2] += 0.3
        out[i] = img
    return out


def write_mask_file(path: Path, mask: np.ndarray, seed: int = 0) -> Path:
    """Save ``mask`` (H, W) bool as a mask file (centre 4, power 2; R from its samples)."""
    acceleration = mask.size / np.count_nonzero(mask)
    save_mask(path, mask, acceleration=acceleration, seed=seed, center_size=4, power=2.0)
    return path


#: file name of the mask :func:`write_test_shards` saves beside its shards
TEST_MASK_NAME = "mask.npz"


def mask_path_of(shards: list[Path]) -> Path:
    """The mask file :func:`write_test_shards` saved beside ``shards``."""
    return shards[0].parent / TEST_MASK_NAME


def write_test_shards(
    folder: Path,
    n_subjects: int,
    n_slices: int = 4,
    size: int = 32,
    empty: int = 0,
    acceleration: float = 4.0,
    seed: int = 0,
    mask_seed: int = 7,
) -> list[Path]:
    """Shards of phantom slices and their seeded variable-density mask, saved as
    ``folder / TEST_MASK_NAME`` (:func:`mask_path_of`)."""
    rng = np.random.default_rng(seed)
    mask = variable_density_mask((size, size), acceleration, center_size=4, seed=mask_seed)
    prep = preprocessing(image_size=(size, size))
    folder.mkdir(parents=True, exist_ok=True)
    write_mask_file(folder / TEST_MASK_NAME, mask, seed=mask_seed)
    paths = []
    for s in range(n_subjects):
        path = folder / f"SUB{s:03d}.h5"
        write_target_shard(
            path,
            phantom_slices(n_slices, size, rng, empty=empty),
            mask,
            prep,
            subject=f"SUB{s:03d}",
            source_file=f"sub{s}.nii.gz",
            source_md5="0" * 32,
        )
        paths.append(path)
    return paths


def set_slice_geometry(
    path: Path, pixel_spacing: tuple[float, float], native_extent: tuple[int, int, int, int]
) -> None:
    """Overwrite a shard's ``pixel_spacing`` (mm of H, W) and ``native_extent`` attributes."""

    import h5py

    with h5py.File(path, "a") as f:
        f.attrs["pixel_spacing"] = json.dumps([float(v) for v in pixel_spacing])
        f.attrs["native_extent"] = json.dumps([int(v) for v in native_extent])
