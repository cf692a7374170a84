"""Commands of workflow/rules/report.smk (table, figure2) and ``summary`` (library imported after
parsing)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ssimrecon.cli.arguments import add_config_json, parse_pairs
from ssimrecon.config.sections import load_settings
from ssimrecon.config.stages import Figure2Settings, TableSettings

log = logging.getLogger(__name__)


def table(argv: list[str]) -> int:
    """``ssimrecon table --metrics NAME=CSV ... --volumes NAME=CSV ... --split test --config-json
    {"baseline": NAME, "min_signal_fraction": F, "scale_percentile": P, "seeds": N, "primary":
    {metric, region, slices}, "bootstrap": {resamples, seed}} --csv T.csv
    --md T.md --html T.html``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon table",
        description="Table 1: per-method statistics, paired p-values and the rules they follow.",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        required=True,
        metavar="NAME=CSV",
        help="per-slice metrics per method, in table row order",
    )
    parser.add_argument(
        "--volumes",
        nargs="+",
        required=True,
        metavar="NAME=CSV",
        help="per-volume (fastMRI convention) metrics per method",
    )
    parser.add_argument("--split", required=True, help="the split the metrics cover (test, val)")
    add_config_json(
        parser,
        "evaluation.baseline, evaluation.min_signal_fraction and preprocessing.scale_percentile",
    )
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--md", type=Path, required=True)
    parser.add_argument("--html", type=Path, required=True)
    parser.add_argument(
        "--mask", type=Path, help="the methods' mask .npz: its nominal and effective R, stated"
    )
    parser.add_argument(
        "--forward-model",
        choices=("magnitude", "complex", "multicoil"),
        help="preprocessing.forward_model of the data (with --mask): which effective R applies",
    )
    args = parser.parse_args(argv)
    if (args.mask is None) != (args.forward_model is None):
        parser.error("give --mask and --forward-model together")
    paths = parse_pairs(args.metrics, "--metrics")
    volume_paths = parse_pairs(args.volumes, "--volumes")
    settings = load_settings(args.config_json, TableSettings, "evaluation")
    from ssimrecon.evaluation.table import (
        Primary,
        TableRules,
        build_table1,
        read_metrics_csv,
        read_volumes_csv,
    )
    from ssimrecon.evaluation.table_render import write_table1

    acquisition: dict = {}
    if args.mask is not None:
        from ssimrecon.kspace.forward import effective_acceleration_of
        from ssimrecon.kspace.mask import achieved_acceleration, load_mask

        mask = load_mask(args.mask)[0]
        acquisition = {
            "forward_model": args.forward_model,
            "acceleration": achieved_acceleration(mask),
            "effective_acceleration": effective_acceleration_of(mask, args.forward_model),
        }
    rules = TableRules(
        **acquisition,
        split=args.split,
        baseline=settings.baseline,
        min_signal_fraction=settings.min_signal_fraction,
        scale_percentile=settings.scale_percentile,
        seeds=settings.seeds,
        primary=Primary.from_config(settings.primary),
        resamples=settings.bootstrap["resamples"],
        bootstrap_seed=settings.bootstrap["seed"],
    )
    result = build_table1(
        {name: read_metrics_csv(path) for name, path in paths.items()},
        {name: read_volumes_csv(path) for name, path in volume_paths.items()},
        rules,
    )
    write_table1(result, rules, args.csv, args.md, args.html)
    log.info("wrote %s, %s and %s (%d methods)", args.csv, args.md, args.html, len(paths))
    return 0


def figure2(argv: list[str]) -> int:
    """``ssimrecon figure2 --shards VAL.h5 ... --model NAME=best.pt ... --config-json {figure +
    min_signal_fraction} --png F.png --pdf F.pdf``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon figure2", description="Figure 2: reconstructions, zooms and error maps."
    )
    parser.add_argument("--shards", nargs="+", type=Path, required=True, help="validation shards")
    parser.add_argument(
        "--mask", type=Path, required=True, help="undersampling mask .npz (masks/R<acc>.npz)"
    )
    parser.add_argument(
        "--model", nargs="*", default=[], metavar="NAME=PT", help="networks, in column order"
    )
    add_config_json(parser, "figure and evaluation.min_signal_fraction")
    parser.add_argument("--png", type=Path)
    parser.add_argument("--pdf", type=Path)
    parser.add_argument("--subjects", nargs="+", help="force the subject(s) shown")
    parser.add_argument("--slices", nargs="+", type=int, help="force the slice index(es) shown")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args(argv)
    if args.png is None and args.pdf is None:
        parser.error("give --png and/or --pdf")
    models = parse_pairs(args.model, "--model")
    settings = load_settings(args.config_json, Figure2Settings, "figure")
    from ssimrecon.kspace.mask import load_mask
    from ssimrecon.plots.figure2 import make_figure2

    panels = make_figure2(
        args.shards,
        models,
        mask=load_mask(args.mask)[0],
        png=args.png,
        pdf=args.pdf,
        zoom_center=tuple(settings.zoom_center),
        zoom_size=settings.zoom_size,
        error_max=settings.error_max,
        dpi=settings.dpi,
        min_signal_fraction=settings.min_signal_fraction,
        subjects=args.subjects,
        slices=args.slices,
        device=args.device,
    )
    shown = ", ".join(f"{p.subject} slice {p.slice}" for p in panels)
    log.info("figure2: %s -> %s", shown, " ".join(str(p) for p in (args.png, args.pdf) if p))
    return 0


def summary(argv: list[str]) -> int:
    """``ssimrecon summary --results results/<experiment>``: outputs and Table 1 (its rules and
    numbers) on stdout."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon summary", description="List an experiment's artifacts and print Table 1."
    )
    parser.add_argument("--results", type=Path, required=True, help="results/<experiment> folder")
    args = parser.parse_args(argv)
    from ssimrecon.evaluation.summary import summary_text

    sys.stdout.write(summary_text(args.results))
    return 0
