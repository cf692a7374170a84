"""A standalone HDF5 with one shard's undersampled k-space for one mask, for external tools.

Shards hold no k-space (the mask is applied on reading, see :mod:`ssimrecon.kspace.shards`); this
writes what a tool that knows nothing of ssimrecon expects: datasets ``kspace`` (S, H, W)
complex64 undersampled (zeros where not sampled; multicoil shards (S, C, H, W), every coil under
the same mask, as fastMRI's multicoil files), ``mask`` (H, W) bool and ``target`` (S, H, W)
float32 (multicoil: the root-sum-of-squares target), multicoil also ``sensitivities`` (C, H, W)
complex64, with the shard's attributes plus ``acceleration`` (achieved), ``mask_seed`` and
``mask_file``.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from ssimrecon.atomic import atomic_output
from ssimrecon.kspace.mask import achieved_acceleration, load_mask
from ssimrecon.kspace.shards import ShardReader


def export_kspace(
    shard_path: str | os.PathLike, mask_path: str | os.PathLike, output: str | os.PathLike
) -> None:
    """Write ``output`` (atomically) from the shard at ``shard_path`` under the mask file at
    ``mask_path``; errors name the file."""
    mask, meta = load_mask(mask_path)
    with ShardReader(shard_path, mask) as reader:
        kspace, target, attrs = reader.read_kspace(), reader.read_target(), dict(reader.attrs)
        sensitivities = reader.sensitivities
    attrs.update(
        acceleration=achieved_acceleration(mask), mask_seed=meta["seed"], mask_file=str(mask_path)
    )
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("kspace", data=kspace.astype(np.complex64))
        f.create_dataset("mask", data=mask)
        f.create_dataset("target", data=target)
        if sensitivities is not None:
            f.create_dataset("sensitivities", data=sensitivities.astype(np.complex64))
        for key, value in attrs.items():
            f.attrs[key] = value
