"""``ssimrecon bench``: how fast the parts of the paper's pipeline are, side by side in one run.

Rows (``--only`` picks some; ``--quick`` uses fewer repetitions, a smaller training image and skips
``demo`` and ``dag`` unless ``--only`` names them), one module each: :mod:`ssimrecon_bench.ssim`,
:mod:`~ssimrecon_bench.train`, :mod:`~ssimrecon_bench.shards`, :mod:`~ssimrecon_bench.loader`,
:mod:`~ssimrecon_bench.disk`, :mod:`~ssimrecon_bench.demo`, :mod:`~ssimrecon_bench.dag`
(docs/performance.md).

Output: a table on stdout, ``<output>/summary.csv`` (metric, value, unit, target, met) and
``<output>/details.json`` (machine, versions, per-row notes).  A row that fails is reported with
value NaN and met False, never dropped.  Started as ``ssimrecon bench`` or ``python -m
ssimrecon_bench.cli``, the command re-executes itself with tcmalloc preloaded as ``ssimrecon train``
does (:mod:`ssimrecon.training.tcmalloc`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
from pathlib import Path

from ssimrecon.errors import SsimreconError
from ssimrecon.training.tcmalloc import cli_preload, ensure_tcmalloc
from ssimrecon_bench.config import load_config
from ssimrecon_bench.core import Options, format_table, machine_info, write_summary
from ssimrecon_bench.runner import QUICK_SKIPPED, ROWS, run_rows
from ssimrecon_bench.train import TRAIN_WORKER_OPTION, train_worker


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ssimrecon bench",
        description="Benchmark the pipeline's hot paths (see docs/performance.md).",
    )
    p.add_argument(
        "--output", type=Path, default=Path("results/bench"), help="folder for summary.csv"
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=ROWS,
        metavar="ROW",
        help=f"rows to run, of {', '.join(ROWS)} (default: all; with --quick all but demo and dag)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions, 128x128 training step, no demo/dag rows unless --only names them",
    )
    p.add_argument(
        "--workflow-dir",
        type=Path,
        default=Path("."),
        help="repository root with Snakefile and config.yaml (default: current folder)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="scratch folder (default: a temporary folder, removed afterwards)",
    )
    p.add_argument(
        "--train-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="training-step image size (default: config image_size; 128 128 with --quick)",
    )
    p.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="timed training steps per process (default 3; 2 with --quick)",
    )
    p.add_argument(
        "--train-rounds",
        type=int,
        default=None,
        help="processes per variant, best kept (default 3; 2 with --quick)",
    )
    p.add_argument(
        "--volume-shape",
        type=int,
        nargs=3,
        metavar=("X", "Y", "Z"),
        default=[256, 256, 150],
        help="shard row volume shape (default: IXI's 256 256 150)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="shard/loader image size (default: config preprocessing.image_size)",
    )
    p.add_argument("--demo-cores", type=int, default=2, help="--cores of the demo run (default 2)")
    p.add_argument(TRAIN_WORKER_OPTION, default=None, help=argparse.SUPPRESS)
    return p


def _check_arguments(args: argparse.Namespace) -> None:
    """Raise SsimreconError naming the first option with a non-positive size or count."""
    for label, values in (
        ("--train-size", args.train_size),
        ("--image-size", args.image_size),
        ("--volume-shape", args.volume_shape),
    ):
        if values is not None and min(values) < 1:
            raise SsimreconError(f"{label}: sizes must be positive, got {values}")
    for label, value in (
        ("--train-steps", args.train_steps),
        ("--train-rounds", args.train_rounds),
        ("--demo-cores", args.demo_cores),
    ):
        if value is not None and value < 1:
            raise SsimreconError(f"{label}: must be >= 1, got {value}")


def main(argv: list[str] | None = None) -> int:
    """CLI: ``ssimrecon bench [--output results/bench] [--only ROW ...] [--quick]``."""
    args = _parser().parse_args(argv)
    if args.train_worker is not None:
        return train_worker(json.loads(args.train_worker))
    cli_preload("bench")
    import torch

    # the stages' per-file INFO lines (one per shard written) would drown the table; warnings
    # still show
    logging.getLogger("ssimrecon").setLevel(logging.WARNING)

    if args.only:
        names = list(dict.fromkeys(args.only))
    else:
        names = [r for r in ROWS if not (args.quick and r in QUICK_SKIPPED)]
    _check_arguments(args)
    workflow_dir = args.workflow_dir.resolve()
    output = args.output.resolve()
    config = load_config(workflow_dir)
    devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    with contextlib.ExitStack() as stack:
        if args.work_dir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssimrecon-bench-")))
        else:
            work = args.work_dir.resolve()
            work.mkdir(parents=True, exist_ok=True)
        opts = Options(
            quick=args.quick,
            workflow_dir=workflow_dir,
            work_dir=work,
            config=config,
            train_size=tuple(args.train_size) if args.train_size else None,
            train_steps=args.train_steps,
            train_rounds=args.train_rounds,
            train_devices=devices,
            volume_shape=tuple(args.volume_shape),
            image_size=tuple(args.image_size) if args.image_size else None,
            demo_cores=args.demo_cores,
            log_dir=output,
        )
        info = machine_info()
        print(
            f"ssimrecon bench: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
            f"({info['torch_threads']} threads), tcmalloc "
            f"{'loaded' if info['tcmalloc_loaded'] else 'not loaded'}, "
            f"native bf16 {info['cpu_native_bf16']}, GPU {info['gpu'] or 'none'}",
            flush=True,
        )
        rows, ctx = run_rows(names, opts, echo=lambda s: print(s, file=sys.stderr, flush=True))
    write_summary(rows, output / "summary.csv")
    details = {
        "machine": info,
        "rows": names,
        "quick": args.quick,
        "notes": ctx.notes,
        "train": ctx.train,
        "summary": [{**r.csv_dict(), "note": r.note} for r in rows],
    }
    (output / "details.json").write_text(json.dumps(details, indent=2, default=str) + "\n")
    sys.stdout.write(format_table(rows))
    missed = [r.metric for r in rows if r.met is False]
    print(
        f"\n{len(rows)} rows -> {output / 'summary.csv'}; targets missed: "
        f"{', '.join(missed) if missed else 'none'}"
    )
    return 0


if __name__ == "__main__":
    # `python -m ssimrecon_bench.cli`: preload tcmalloc as `ssimrecon bench` does (cli_preload only
    # knows the `ssimrecon` entry point); a training worker's allocator is its parent's choice
    if TRAIN_WORKER_OPTION not in sys.argv[1:]:
        ensure_tcmalloc()
    try:
        sys.exit(main())
    except SsimreconError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
