"""Row ``loader``: slices/s the training DataLoader delivers over two IXI-sized shards.

:func:`ssimrecon.training.dataset.make_loader` with the configured batch size and workers (target:
>= 2000), and with ``num_workers 0`` for comparison.  Uses the ``shards`` row's shards, or makes
them when that row did not run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

from ssimrecon.training.tcmalloc import tcmalloc_loaded
from ssimrecon_bench.core import Context, Options, Row, at_least
from ssimrecon_bench.shards import make_shards


def loader_throughput(
    shards: Sequence[Path],
    mask_path: Path,
    batch_size: int,
    num_workers: int,
    min_signal: float,
    seconds: float,
) -> tuple[float, int]:
    """Slices/s the training DataLoader delivers, after its first batch (worker start-up excluded).

    Iterates whole epochs of :class:`~ssimrecon.training.dataset.EpochSampler` until ``seconds``
    have passed; returns (slices/s, slices counted).  Workers are shut down before returning.
    """
    from ssimrecon.kspace.mask import load_mask
    from ssimrecon.training.dataset import EpochSampler, SliceDataset, make_loader

    dataset = SliceDataset(list(shards), load_mask(mask_path)[0], min_signal)
    sampler = EpochSampler(len(dataset), 0)
    loader = make_loader(dataset, batch_size, sampler, num_workers, False)
    count, t0, epoch = 0, None, 0
    try:
        while True:
            sampler.set_epoch(epoch)
            for batch in loader:
                if t0 is None:
                    t0 = time.perf_counter()
                    continue
                count += int(batch["target"].shape[0])
            epoch += 1
            if t0 is not None and time.perf_counter() - t0 >= seconds:
                break
    finally:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        dataset.close()
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    return (count / elapsed if elapsed > 0 else math.nan), count


def bench_loader(opts: Options, ctx: Context) -> list[Row]:
    """Slices/s with the config's workers, and without workers when the config has some."""
    if not ctx.shards:
        make_shards(opts, ctx, timed=0)
    assert ctx.mask is not None  # make_shards saved it
    training = opts.config["training"]
    batch, workers = int(training["batch_size"]), int(training["num_workers"])
    min_signal = float(training["min_signal_fraction"])
    duration = 1.5 if opts.quick else 5.0
    sps, count = loader_throughput(ctx.shards, ctx.mask, batch, workers, min_signal, duration)
    rows = [
        Row(
            "loader_slices_per_s",
            sps,
            "slices/s",
            at_least(2000.0),
            f"{len(ctx.shards)} shards, batch {batch}, num_workers {workers} (config), sampled "
            "k-space points "
            f"+ target, {count} slices, "
            f"tcmalloc {tcmalloc_loaded()}",
        )
    ]
    if workers != 0:
        sps0, count0 = loader_throughput(ctx.shards, ctx.mask, batch, 0, min_signal, duration / 2)
        rows.append(
            Row(
                "loader_slices_per_s_no_workers",
                sps0,
                "slices/s",
                None,
                f"num_workers 0, {count0} slices",
            )
        )
    return rows
