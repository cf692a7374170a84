"""Which rows exist and how a run of them goes: in order, a failing row reported, never dropped."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from ssimrecon_bench.core import Context, Options, Row, Target, at_least, at_most
from ssimrecon_bench.dag import bench_dag
from ssimrecon_bench.demo import bench_demo
from ssimrecon_bench.disk import ADDED_FRACTION_TARGET, bench_disk
from ssimrecon_bench.loader import bench_loader
from ssimrecon_bench.projection import projection_rows
from ssimrecon_bench.shards import bench_shards
from ssimrecon_bench.ssim import bench_ssim
from ssimrecon_bench.train import bench_train

ROWS = ("ssim", "train", "shards", "loader", "disk", "demo", "dag")
#: rows ``--quick`` leaves out unless ``--only`` names them
QUICK_SKIPPED = ("demo", "dag")

RowFunc = Callable[[Options, Context], list[Row]]
#: row name -> (function, the metric, unit and target reported if it fails)
ROW_FUNCS: dict[str, tuple[RowFunc, str, str, Target]] = {
    "ssim": (bench_ssim, "ssim_speedup_vs_pytorch_msssim", "x", at_least(5.0)),
    "train": (bench_train, "train_fast_vs_plain_speedup", "x", at_least(3.0)),
    "shards": (bench_shards, "shard_volumes_per_s", "volumes/s", at_least(2.0)),
    "loader": (bench_loader, "loader_slices_per_s", "slices/s", at_least(2000.0)),
    "disk": (bench_disk, "disk_added_r_fraction", "fraction", at_most(ADDED_FRACTION_TARGET)),
    "demo": (bench_demo, "demo_wall_time", "min", at_most(10.0)),
    "dag": (bench_dag, "dag_noop_dryrun_s", "s", at_most(5.0)),
}


def _describe(row: Row) -> str:
    target = "" if row.target is None else f"  (target {row.target}: "
    if row.target is not None:
        target += "met)" if row.met else "MISSED)"
    return f"  {row.metric} = {row.value:.4g} {row.unit}{target}"


def run_rows(
    names: Sequence[str], opts: Options, echo: Callable[[str], None] = lambda s: None
) -> tuple[list[Row], Context]:
    """Run the named rows in order, then the projection; a failing row becomes one NaN row with met
    False and the error in its note.  ``echo`` gets a progress line per row and result."""
    ctx = Context()
    rows: list[Row] = []
    for name in names:
        func, metric, unit, target = ROW_FUNCS[name]
        echo(f"bench: {name} ...")
        t0 = time.perf_counter()
        try:
            new = func(opts, ctx)
        except Exception as exc:  # a missed or broken row is reported, never hidden
            new = [
                Row(metric, math.nan, unit, target, f"FAILED: {type(exc).__name__}: {exc}"[:600])
            ]
        ctx.notes.setdefault("row_seconds", {})[name] = round(time.perf_counter() - t0, 2)
        for row in new:
            echo(_describe(row))
        rows += new
    try:
        rows += projection_rows(opts, ctx)
    except Exception as exc:  # noqa: BLE001 - informational
        ctx.notes["projection_error"] = str(exc)
    return rows, ctx
