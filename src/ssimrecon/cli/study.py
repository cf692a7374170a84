"""Commands of workflow/rules/study.smk: study-table, seed-average, study-figure (library imported
after parsing)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ssimrecon.cli.arguments import add_config_json, parse_pairs
from ssimrecon.config.sections import load_settings
from ssimrecon.config.stages import StudySettings
from ssimrecon.errors import SsimreconError

log = logging.getLogger(__name__)


def study_table(argv: list[str]) -> int:
    """``ssimrecon study-table --metrics RUN=CSV ... --volumes RUN=CSV ... --config-json {"runs":
    {RUN: {condition, network, loss, acceleration, seed, swept}}, "min_signal_fraction": F,
    "baseline": NAME, "primary": {...}, "bootstrap": {resamples, seed}}
    --output study.csv``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon study-table", description="study.csv: one row of test metrics per run."
    )
    parser.add_argument("--metrics", nargs="+", required=True, metavar="RUN=CSV")
    parser.add_argument("--volumes", nargs="+", required=True, metavar="RUN=CSV")
    add_config_json(
        parser,
        "the runs (study section expanded), evaluation.min_signal_fraction, baseline, primary "
        "and bootstrap",
    )
    parser.add_argument("--output", type=Path, required=True, help="study.csv")
    parser.add_argument(
        "--masks",
        nargs="*",
        default=[],
        metavar="R=NPZ",
        help="each acceleration's mask (its path label, e.g. 10=masks/R10.npz): effective R",
    )
    args = parser.parse_args(argv)
    slices, volumes = parse_pairs(args.metrics, "--metrics"), parse_pairs(args.volumes, "--volumes")
    masks = parse_pairs(args.masks, "--masks")
    settings = load_settings(args.config_json, StudySettings, "study")
    from ssimrecon.atomic import write_csv_atomic
    from ssimrecon.evaluation.study_results import study_table as build
    from ssimrecon.evaluation.table import Primary, read_metrics_csv, read_volumes_csv
    from ssimrecon.kspace.forward import effective_acceleration_of
    from ssimrecon.kspace.mask import load_mask

    loaded = {label: load_mask(path)[0] for label, path in masks.items()}
    effective = {}
    for name, run in settings.runs.items():
        mask = loaded.get(f"{float(run['acceleration']):g}")
        if mask is not None:
            model = str(run.get("forward_model", "magnitude"))
            effective[name] = effective_acceleration_of(mask, model)

    table = build(
        settings.runs,
        {name: read_metrics_csv(path) for name, path in slices.items()},
        {name: read_volumes_csv(path) for name, path in volumes.items()},
        settings.min_signal_fraction,
        baseline=settings.baseline,
        primary=Primary.from_config(settings.primary),
        resamples=settings.bootstrap["resamples"],
        seed=settings.bootstrap["seed"],
        effective=effective,
    )
    write_csv_atomic(table, args.output)
    log.info("study: %d runs -> %s", len(table), args.output)
    return 0


def seed_average(argv: list[str]) -> int:
    """``ssimrecon seed-average --metrics A.csv ... --volumes A.volumes.csv ... --output M.csv
    --output-volumes M.volumes.csv``: one condition's metrics averaged over its seeds."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon seed-average",
        description="Per-slice and per-volume metrics of one condition averaged over its seeds.",
    )
    parser.add_argument("--metrics", nargs="+", type=Path, required=True, help="one CSV per seed")
    parser.add_argument("--volumes", nargs="+", type=Path, required=True, help="one per seed")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--output-volumes", type=Path, required=True)
    args = parser.parse_args(argv)
    from ssimrecon.atomic import write_csv_atomic
    from ssimrecon.evaluation.study_results import seed_average as average
    from ssimrecon.evaluation.study_results import seed_average_volumes
    from ssimrecon.evaluation.table import read_metrics_csv, read_volumes_csv

    write_csv_atomic(average([read_metrics_csv(p) for p in args.metrics]), args.output)
    volumes = seed_average_volumes([read_volumes_csv(p) for p in args.volumes])
    write_csv_atomic(volumes, args.output_volumes)
    log.info("seed average of %d runs -> %s", len(args.metrics), args.output)
    return 0


def study_figure(argv: list[str]) -> int:
    """``ssimrecon study-figure --study study.csv --output study.png``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon study-figure", description="SSIM and PSNR against the swept loss weight."
    )
    parser.add_argument("--study", type=Path, required=True, help="study.csv")
    parser.add_argument("--output", type=Path, required=True, help="PNG")
    parser.add_argument("--dpi", type=int, default=120)
    args = parser.parse_args(argv)
    if not args.study.is_file():
        raise SsimreconError(f"study table not found: {args.study}")
    import pandas as pd

    from ssimrecon.plots.study_figure import plot_study

    plot_study(
        pd.read_csv(args.study, keep_default_na=False, na_values=[""]), args.output, args.dpi
    )
    log.info("study figure -> %s", args.output)
    return 0
