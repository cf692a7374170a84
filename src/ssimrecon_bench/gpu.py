"""``make gpu-check``: the GPU path measured in one unattended run (at most 8 minutes on one GPU).

``python -m ssimrecon_bench.gpu --output results/bench`` prints a table and writes
``<output>/gpu.csv`` (metric, value, unit, target, met; :mod:`ssimrecon_bench.core`) and
``<output>/gpu.json`` (machine, notes, skipped rows).  Rows, in order (docs/performance.md):

1. training step slices/s of the paper U-Net (``model`` and ``preprocessing.image_size`` of
   config.yaml) at the config's batch: fp32 (TF32 on CUDA), bf16 + channels_last with the
   project's and torch's InstanceNorm; then at a 4x larger batch; host syncs per step (target 0);
   1 - SSIM forward+backward vs pytorch_msssim; evaluation slices/s; the training loader on the
   CPUs a SLURM training job gets vs the GPU's consumption (target >= 3x); the bf16 variants again
   under ``torch.compile``; peak GPU memory;
2. derived: model FLOP utilisation against the device's bf16 dense peak (target >= 40 %) and the
   projected GPU-hours of the paper run (target <= 3; :mod:`ssimrecon_bench.projection`).

Each measurement first checks the time budget (``--budget-s``) against its estimate and is
reported as skipped (NaN, note) when it would not fit.  Without CUDA the script says so, runs the
same rows on the CPU at ``--cpu-size`` (small) and exits 0; CUDA-only figures are NaN there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssimrecon_bench.config import load_config
from ssimrecon_bench.core import (
    Context,
    Options,
    Row,
    at_least,
    at_most,
    format_table,
    machine_info,
    run_script,
    write_summary,
)

#: the issue's targets
MFU_TARGET, SYNCS_TARGET, LOADER_RATIO_TARGET = 0.40, 0.0, 3.0
#: (name, bf16 + channels_last, torch.compile, instance-norm kernel) at the config's batch
VARIANTS = (
    ("fp32", False, False, "project"),
    ("bf16_cl", True, False, "project"),
    ("bf16_cl_torchnorm", True, False, "torch"),
)
COMPILED = (
    ("bf16_cl_compile", True, True, "project"),
    ("bf16_cl_compile_torchnorm", True, True, "torch"),
)
LARGE_BATCH_FACTOR = 4
#: the note of a row that only a CUDA device can measure, on a machine without one
NO_CUDA = "no CUDA"


class Budget:
    """Seconds left of the run's budget; :meth:`run` skips a measurement that would not fit."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds
        self.skipped: list[str] = []

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def run(self, name: str, estimate_s: float, fn: Callable[[], Any]) -> Any:
        """``fn()`` if ``estimate_s`` fits in what is left, else None (recorded as skipped).  An
        exception becomes the string ``"FAILED: ..."``."""
        if estimate_s > self.left():
            self.skipped.append(f"{name} (needs ~{estimate_s:.0f}s, {self.left():.0f}s left)")
            return None
        try:
            return fn()
        except Exception as exc:  # reported in the row's note, never hidden
            return f"FAILED: {type(exc).__name__}: {exc}"[:400]


def _value(result: Any, index: int | None = None) -> tuple[float, str]:
    """(number, note) of a :meth:`Budget.run` result: NaN with 'skipped'/'FAILED' notes."""
    if result is None:
        return math.nan, "skipped: time budget"
    if isinstance(result, str):
        return math.nan, result
    return float(result if index is None else result[index]), ""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ssimrecon_bench.gpu", description="The GPU path measured (make gpu-check)."
    )
    p.add_argument("--output", type=Path, default=Path("results/bench"), help="folder for gpu.csv")
    p.add_argument("--workflow-dir", type=Path, default=Path("."), help="folder of config.yaml")
    p.add_argument("--budget-s", type=float, default=420.0, help="time budget of all rows")
    p.add_argument("--cpu-size", type=int, default=64, help="image size without CUDA (pixels)")
    p.add_argument(
        "--model-json", default=None, help="model settings instead of config.yaml's (tests)"
    )
    p.add_argument(
        "--volume-shape",
        type=int,
        nargs=3,
        default=None,
        help="voxels of the loader's pseudo-subject (default 256 256 150; CPU: 64 64 16)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run every row within the budget, print the table, write gpu.csv and gpu.json; exit 0."""
    args = _parser().parse_args(argv)
    import torch

    from ssimrecon.training.bf16 import resolve_bf16
    from ssimrecon_bench.gpu_rows import bf16_peak_tflops, ssim_fwd_bwd_ms, step_throughput
    from ssimrecon_bench.projection import GPU_HOURS_TARGET, projection_rows
    from ssimrecon_bench.shards import make_shards
    from ssimrecon_bench.train import unet_flops_per_slice

    logging.getLogger("ssimrecon").setLevel(logging.WARNING)
    budget = Budget(args.budget_s)
    stack = contextlib.ExitStack()
    config = load_config(args.workflow_dir.resolve())
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    paper_size = tuple(int(s) for s in config["preprocessing"]["image_size"])
    size = paper_size if cuda else (args.cpu_size, args.cpu_size)
    model_cfg = json.loads(args.model_json) if args.model_json else dict(config["model"])
    batch = int(config["training"]["batch_size"])
    info = machine_info()
    name = torch.cuda.get_device_name() if cuda else "CPU"
    if cuda:
        print(f"gpu-check: {name}, torch {info['torch']}, budget {args.budget_s:.0f}s", flush=True)
    else:
        print(
            "gpu-check: no CUDA device on this machine: running the CPU rows at "
            f"{size[0]}x{size[1]} (CUDA-only figures are NaN)",
            flush=True,
        )
    volume = tuple(args.volume_shape or ((256, 256, 150) if cuda else (64, 64, 16)))
    opts = Options(
        workflow_dir=args.workflow_dir.resolve(),
        work_dir=Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu-check-"))),
        config=config,
        volume_shape=volume,  # type: ignore[arg-type]
        image_size=None if cuda else size,  # type: ignore[arg-type]
    )
    ctx = Context()
    steps, warmup = (20, 3) if cuda else (2, 1)
    rows: list[Row] = []
    where = f"{name}, {size[0]}x{size[1]}"
    flops = unet_flops_per_slice(model_cfg, size)
    peak_tflops, peak_source = bf16_peak_tflops(name) if cuda else (math.nan, "no CUDA device")

    def step(variant: tuple, b: int, estimate: float) -> tuple[float, str, float]:
        label, fast, comp, norm = variant
        got = budget.run(
            f"{label} batch {b}",
            estimate,
            lambda: step_throughput(
                model_cfg,
                b,
                size,
                device,
                fast=fast,
                compile_model=comp,
                instance_norm=norm,
                steps=steps,
                warmup=warmup,
            ),
        )
        sps, note = _value(got, 0)
        mem, _ = _value(got, 1)
        return sps, note, mem

    measured: dict[str, tuple[float, float]] = {}
    per_step_s = 60.0 if not cuda else 2.0
    for variant in VARIANTS:
        sps, note, mem = step(variant, batch, per_step_s * (steps + warmup) / 10 + 5)
        measured[variant[0]] = (sps, mem)
        rows.append(
            Row(
                f"gpu_train_{variant[0]}_slices_per_s",
                sps,
                "slices/s",
                None,
                note
                or f"{where}, batch {batch}, {steps} timed steps after {warmup}, bf16 "
                f"{variant[1] and resolve_bf16('auto', device)}, InstanceNorm {variant[3]}",
            )
        )
    large = batch * LARGE_BATCH_FACTOR
    for variant in VARIANTS[1:]:
        sps, note, mem = step(variant, large, 30.0) if cuda else (math.nan, NO_CUDA, math.nan)
        measured[f"{variant[0]}_batch{large}"] = (sps, mem)
        rows.append(
            Row(
                f"gpu_train_{variant[0]}_batch{large}_slices_per_s",
                sps,
                "slices/s",
                None,
                note or f"{where}, batch {large}, peak memory {mem:.1f} GiB",
            )
        )
    rows += _side_rows(opts, ctx, budget, device, model_cfg, size, batch, make_shards)
    ssim_ms = budget.run("ssim", 20.0, lambda: ssim_fwd_bwd_ms(batch, size, device))
    for variant in COMPILED:
        sps, note, mem = step(variant, batch, 60.0) if cuda else (math.nan, NO_CUDA, math.nan)
        measured[variant[0]] = (sps, mem)
        rows.append(
            Row(
                f"gpu_train_{variant[0]}_slices_per_s",
                sps,
                "slices/s",
                None,
                note or f"{where}, batch {batch}, torch.compile (compiled in the warm-up)",
            )
        )
    fast = {k: v for k, v in measured.items() if k != "fp32" and "_batch" not in k}
    best_name = max(fast, key=lambda k: -1 if math.isnan(fast[k][0]) else fast[k][0])
    best_sps, best_mem = fast[best_name]
    rows.append(
        Row(
            "gpu_train_best_slices_per_s",
            best_sps,
            "slices/s",
            None,
            f"{best_name} at batch {batch} (the training run's configuration)",
        )
    )
    rows.append(
        Row(
            "gpu_train_mfu",
            best_sps * flops / (peak_tflops * 1e12) if peak_tflops > 0 else math.nan,
            "fraction",
            at_least(MFU_TARGET),
            f"{best_name}: {flops / 1e9:.3g} GFLOP/slice fwd+bwd x slices/s over the bf16 dense "
            f"peak {peak_tflops:g} TFLOP/s ({peak_source})",
        )
    )
    rows.append(
        Row(
            "gpu_peak_memory_gib",
            best_mem,
            "GiB",
            None,
            f"torch.cuda.max_memory_allocated of {best_name} at batch {batch}",
        )
    )
    rows += _ssim_rows(ssim_ms, batch, size)
    loader_sps = ctx.notes.get("loader_slices_per_s", math.nan)
    rows.append(
        Row(
            "gpu_loader_vs_consumption",
            loader_sps / best_sps if best_sps > 0 else math.nan,
            "x",
            at_least(LOADER_RATIO_TARGET),
            f"loader slices/s over {best_name}'s slices/s",
        )
    )
    if cuda:
        ctx.train["cuda"] = {"size": size, "fast": {"slices_per_s": best_sps}}
        rows += projection_rows(opts, ctx)
    else:
        rows.append(
            Row("gpu_paper_run_projected_hours", math.nan, "h", at_most(GPU_HOURS_TARGET), NO_CUDA)
        )
    rows.append(Row("gpu_check_skipped_rows", float(len(budget.skipped)), "rows", None, ""))
    output = args.output.resolve()
    write_summary(rows, output / "gpu.csv")
    details = {
        "machine": info,
        "device": name,
        "size": list(size),
        "model": model_cfg,
        "skipped": budget.skipped,
        "summary": [{**r.csv_dict(), "note": r.note} for r in rows],
    }
    (output / "gpu.json").write_text(json.dumps(details, indent=2, default=str) + "\n")
    stack.close()  # the pseudo-subject's shards
    sys.stdout.write(format_table(rows))
    skipped = "; ".join(budget.skipped) or "none"
    print(f"\n{len(rows)} rows -> {output / 'gpu.csv'}; skipped for time: {skipped}")
    return 0


def _ssim_rows(result: Any, batch: int, size: tuple[int, int]) -> list[Row]:
    """ms of ours and pytorch_msssim's 1 - SSIM forward+backward, and their ratio."""
    ours, note = (math.nan, "") if not isinstance(result, dict) else (result["ours"], "")
    theirs = result["msssim"] if isinstance(result, dict) else math.nan
    if not isinstance(result, dict):
        note = _value(result)[1]
    shape = f"{batch}x1x{size[0]}x{size[1]} float32, torch.utils.benchmark"
    return [
        Row("gpu_ssim_fwd_bwd_ms", ours, "ms", None, note or shape),
        Row("gpu_pytorch_msssim_fwd_bwd_ms", theirs, "ms", None, note or shape),
        Row("gpu_ssim_speedup_vs_pytorch_msssim", theirs / ours, "x", None, note or "ratio"),
    ]


def _side_rows(
    opts: Options,
    ctx: Context,
    budget: Budget,
    device: Any,
    model_cfg: dict[str, Any],
    size: tuple[int, int],
    batch: int,
    make_shards: Callable[..., Any],
) -> list[Row]:
    """Host syncs per step, evaluation slices/s and the loader on a training job's CPUs; the
    loader's slices/s is left in ``ctx.notes["loader_slices_per_s"]``."""
    from ssimrecon_bench.gpu_rows import (
        eval_slices_per_s,
        host_syncs_per_step,
        loader_slices_per_s_on_cpus,
    )

    training = opts.config["training"]
    eval_batch = 4 * batch
    evaluated = budget.run(
        "evaluation", 30.0, lambda: eval_slices_per_s(model_cfg, size, device, eval_batch, 64)
    )
    value, note = _value(evaluated)
    eval_row = (
        Row(
            "gpu_eval_slices_per_s",
            value,
            "slices/s",
            None,
            note or f"predict_slices, batch {eval_batch}, 64 slices, fp32, host in and out",
        ),
    )
    made = budget.run("shards", 60.0, lambda: make_shards(opts, ctx, timed=0))
    if isinstance(made, str) or made is None:
        note = _value(made)[1]
        ctx.notes["loader_slices_per_s"] = math.nan
        return [
            Row("gpu_host_syncs_per_step", math.nan, "syncs", at_most(SYNCS_TARGET), note),
            *eval_row,
            Row("gpu_loader_slices_per_s", math.nan, "slices/s", None, note),
        ]
    cuda = device.type == "cuda"
    syncs = budget.run(
        "host syncs",
        30.0,
        lambda: host_syncs_per_step(model_cfg, ctx.shards, ctx.mask, batch, device, 10),
    )
    value, note = _value(syncs)
    rows = [
        Row(
            "gpu_host_syncs_per_step",
            value,
            "syncs",
            at_most(SYNCS_TARGET),
            note
            or (
                "set_sync_debug_mode('warn') over 10 steps: prepare_batch + train_step + loss sums"
                if cuda
                else "needs CUDA"
            ),
        ),
        *eval_row,
    ]
    cpus = int(training["threads"]) + int(training["num_workers"])  # rule train's cpus_per_task
    loaded = budget.run(
        "loader",
        20.0,
        lambda: loader_slices_per_s_on_cpus(
            ctx.shards,
            ctx.mask,
            batch,
            int(training["num_workers"]),
            float(training["min_signal_fraction"]),
            cpus,
            5.0 if cuda else 1.5,
        ),
    )
    value, note = _value(loaded, 0)
    ctx.notes["loader_slices_per_s"] = value
    rows.append(
        Row(
            "gpu_loader_slices_per_s",
            value,
            "slices/s",
            None,
            note or loaded[1],
        )
    )
    return rows


if __name__ == "__main__":
    run_script(main)
