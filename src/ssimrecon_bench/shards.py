"""Row ``shards``: :func:`ssimrecon.kspace.shards.make_shard` on an IXI-sized pseudo-subject.

256x256x150 voxels (``--volume-shape``) with the paper's preprocessing: volumes/s including the
NIfTI load and the HDF5 write, in one process (target: >= 2).  The shards it keeps and the paper's
mask feed the ``loader`` and ``disk`` rows, and its slices per volume the paper-run projection.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ssimrecon_bench.core import Context, Options, Row, at_least

if TYPE_CHECKING:
    from ssimrecon.kspace.preprocess import Preprocessing


def ixi_volume(work: Path, shape: tuple[int, int, int]) -> tuple[Path, str]:
    """An IXI-shaped pseudo-subject (.nii.gz, IXI field of view) in ``work``; (path, md5)."""
    import numpy as np

    from ssimrecon.data import demo as demo_data

    path = work / f"IXI-bench-{'x'.join(map(str, shape))}-T1.nii.gz"
    if not path.is_file():
        voxel = tuple(v * n / s for v, n, s in zip(demo_data.IXI_VOXEL, demo_data.IXI_SHAPE, shape))
        data, affine = demo_data.synth_subject(
            tuple(shape), voxel, np.random.default_rng([2019, 0])
        )
        work.mkdir(parents=True, exist_ok=True)
        path.write_bytes(demo_data.nifti_gz_bytes(data, affine))
    from ssimrecon.checksums import file_md5

    return path, file_md5(path)


def _preprocessing(opts: Options) -> Preprocessing:
    """Config ``preprocessing``, with ``--image-size`` when given."""
    from ssimrecon.kspace.preprocess import Preprocessing

    values = dict(opts.config["preprocessing"])
    if opts.image_size:
        values["image_size"] = list(opts.image_size)
    return Preprocessing.from_dict(values)


def save_config_mask(
    opts: Options, work: Path, image_size: tuple[int, int], acceleration: float
) -> Path:
    """The config's sampling mask at ``acceleration`` for ``image_size``, saved as
    ``work/masks/R<acceleration>.npz`` (the workflow's name)."""
    from ssimrecon.kspace.mask import save_mask, variable_density_mask

    m = opts.config["mask"]
    path = work / "masks" / f"R{acceleration:g}.npz"
    center, seed, power = int(m["center_size"]), int(m["seed"]), float(m["power"])
    mask = variable_density_mask(tuple(image_size), acceleration, center, seed, power)
    save_mask(path, mask, acceleration=acceleration, seed=seed, center_size=center, power=power)
    return path


def make_shards(opts: Options, ctx: Context, timed: int) -> tuple[list[float], dict[str, float]]:
    """Write one warm-up shard (kept, and copied, for the loader) and ``timed`` timed ones
    (deleted); returns (seconds per timed shard, mean seconds of its load/compute/write parts).

    Sets ``ctx.shards``, ``ctx.mask`` (the config's mask file), ``ctx.slices_per_volume`` and
    ``ctx.notes["shard"]``.
    """
    from ssimrecon.kspace.shards import ShardReader, make_shard

    work = opts.work_dir / "shards"
    work.mkdir(parents=True, exist_ok=True)
    volume, md5 = ixi_volume(opts.work_dir, opts.volume_shape)
    prep = _preprocessing(opts)
    acceleration = float(opts.config["mask"]["acceleration"])
    ctx.mask = save_config_mask(opts, work, prep.image_size, acceleration)
    kept = work / "IXI900.h5"
    make_shard(volume, "IXI900", prep, kept, source_md5=md5)
    seconds: list[float] = []
    parts = {"load": 0.0, "compute": 0.0, "write": 0.0}
    for i in range(timed):
        out = work / f"timed-{i}.h5"
        t0 = time.perf_counter()
        timings = make_shard(volume, f"IXI{901 + i}", prep, out, source_md5=md5)
        seconds.append(time.perf_counter() - t0)
        for key in parts:
            parts[key] += float((timings or {}).get(key, 0.0))
        out.unlink()
    second = work / "IXI899.h5"
    shutil.copyfile(kept, second)
    ctx.shards = [kept, second]
    min_signal = float(opts.config["training"]["min_signal_fraction"])
    with ShardReader(kept) as reader:
        signal = [float(v) for v in reader.slice_signal]
        ctx.notes["shard"] = {
            "slices": reader.num_slices,
            "shape": list(reader.shape),
            "bytes": kept.stat().st_size,
        }
    ctx.slices_per_volume = float(sum(f >= min_signal for f in signal))
    return seconds, {k: v / max(timed, 1) for k, v in parts.items()}


def bench_shards(opts: Options, ctx: Context) -> list[Row]:
    """Volumes/s and the mean seconds of each part of a shard, slices per volume for training."""
    timed = 2 if opts.quick else 5
    seconds, parts = make_shards(opts, ctx, timed)
    total = sum(seconds)
    shape = "x".join(map(str, opts.volume_shape))
    info = ctx.notes["shard"]
    return [
        Row(
            "shard_volumes_per_s",
            timed / total,
            "volumes/s",
            at_least(2.0),
            f"{timed} volumes {shape} -> {info['shape'][0]} slices "
            f"{info['shape'][1]}x{info['shape'][2]}, "
            f"{info['bytes'] / 2**20:.0f} MiB each; one process, NIfTI load + targets + HDF5 write",
        ),
        Row("shard_load_s", parts["load"], "s/volume", None, "NIfTI read + RAS reorientation"),
        Row("shard_compute_s", parts["compute"], "s/volume", None, "slicing, scaling, phase"),
        Row("shard_write_s", parts["write"], "s/volume", None, "HDF5 write (temp file + rename)"),
        Row(
            "shard_training_slices_per_volume",
            ctx.slices_per_volume or 0.0,
            "slices",
            None,
            f"slices with slice_signal >= training.min_signal_fraction "
            f"({opts.config['training']['min_signal_fraction']})",
        ),
    ]
