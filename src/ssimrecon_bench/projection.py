"""Derived rows: hours of the paper's full run at each fast-path throughput the ``train`` row
measured at the paper's image size (GPU target: <= 3 h)."""

from __future__ import annotations

import math

from ssimrecon_bench.core import Context, Options, Row, at_most

#: the issue's estimate of the paper's training set (254 volumes x ~150 slices), used when the
#: shards row has not measured how many slices a volume gives
ISSUE_TRAIN_SLICES = 38_000
#: forward-only cost of a validation slice relative to a training step (forward + backward ~ 3
#: forwards)
VAL_COST = 1.0 / 3.0
GPU_HOURS_TARGET = 3.0


def projected_hours(
    slices_per_s: float,
    train_slices: float,
    val_slices: float,
    epochs: int,
    networks: int,
    val_cost: float = VAL_COST,
) -> float:
    """Hours for ``networks`` x ``epochs`` of training at ``slices_per_s`` training throughput.

    Each epoch costs ``train_slices`` training steps plus ``val_slices`` forward passes, a forward
    pass counted as ``val_cost`` of a training step (a backward pass costs about two forwards). NaN
    when the throughput is not positive.
    """
    if not slices_per_s > 0:
        return math.nan
    seconds = networks * epochs * (train_slices + val_cost * val_slices) / slices_per_s
    return seconds / 3600.0


def projection_rows(opts: Options, ctx: Context) -> list[Row]:
    """One ``<cpu|gpu>_paper_run_projected_hours`` row per device measured at the paper size."""
    cfg = opts.config
    paper_size = tuple(int(s) for s in cfg["preprocessing"]["image_size"])
    epochs = int(cfg["training"]["epochs"])
    networks = len(cfg.get("networks") or {}) or 2
    n_train, n_val = int(cfg["split"]["n_train"]), int(cfg["split"]["n_val"])
    if ctx.slices_per_volume:
        per_volume = ctx.slices_per_volume
        source = f"{per_volume:.0f} slices/volume measured by the shards row"
    else:
        per_volume = ISSUE_TRAIN_SLICES / n_train
        source = f"~{ISSUE_TRAIN_SLICES} training slices (issue's estimate)"
    rows = []
    for device, measured in ctx.train.items():
        if tuple(measured["size"]) != paper_size:
            continue
        hours = projected_hours(
            measured["fast"]["slices_per_s"],
            per_volume * n_train,
            per_volume * n_val,
            epochs,
            networks,
        )
        gpu = device != "cpu"
        rows.append(
            Row(
                "gpu_paper_run_projected_hours" if gpu else "cpu_paper_run_projected_hours",
                hours,
                "h",
                at_most(GPU_HOURS_TARGET) if gpu else None,
                f"{networks} networks x {epochs} epochs x ({n_train} + {n_val}/3 val) volumes, "
                f"{source}",
            )
        )
    return rows
