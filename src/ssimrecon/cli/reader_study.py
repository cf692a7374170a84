"""``ssimrecon reader-study make|analyze`` (workflow/rules/reader_study.smk runs ``make``; the
readers' answers come back by hand, so ``analyze`` has no rule). Libraries are imported after
parsing."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ssimrecon.cli.arguments import add_config_json, parse_pairs
from ssimrecon.config.sections import load_settings

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssimrecon reader-study",
        description="A blinded reader study: a static HTML reading session, and its statistics.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{make,analyze}")
    make = commands.add_parser(
        "make",
        help="write the reading page (HTML) and its key (CSV)",
        description="Draw the trials from the test shards, reconstruct them and write a "
        "self-contained HTML page for the readers and the key (which method is where) for you.",
    )
    make.add_argument("--shards", nargs="+", type=Path, required=True, help="test shards")
    make.add_argument("--mask", type=Path, required=True, help="undersampling mask .npz")
    make.add_argument(
        "--model", nargs="*", default=[], metavar="NAME=PT", help="the networks among the methods"
    )
    add_config_json(make, "reader_study (methods resolved) and evaluation.min_signal_fraction")
    make.add_argument("--html", type=Path, required=True, help="the page to give the readers")
    make.add_argument("--key", type=Path, required=True, help="the key: keep it from the readers")
    make.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    analyze = commands.add_parser(
        "analyze",
        help="statistics of the readers' exported answers",
        description="Preference rates, Likert scores, agreement and consistency of the answers.",
    )
    analyze.add_argument("answers", nargs="+", type=Path, help="exported answers CSVs")
    analyze.add_argument("--key", type=Path, required=True, help="the session's key.csv")
    analyze.add_argument("--csv", type=Path, required=True, help="tidy results table")
    analyze.add_argument("--md", type=Path, required=True, help="results as Markdown")
    analyze.add_argument("--png", type=Path, required=True, help="results figure")
    analyze.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    return parser


def reader_study(argv: list[str]) -> int:
    """``ssimrecon reader-study make ...`` or ``ssimrecon reader-study analyze ...``."""
    args = _parser().parse_args(argv)
    return _make(args) if args.command == "make" else _analyze(args)


def _make(args: argparse.Namespace) -> int:
    from ssimrecon.reader_study.settings import ReaderStudySettings

    models = parse_pairs(args.model, "--model")
    settings = load_settings(args.config_json, ReaderStudySettings, "reader_study")
    from ssimrecon.kspace.mask import load_mask
    from ssimrecon.reader_study.session import make_session

    make_session(
        args.shards,
        models,
        methods=settings.methods,
        mask=load_mask(args.mask)[0],
        trials=settings.trials,
        repeats=settings.repeats,
        seed=settings.seed,
        tasks=settings.tasks,
        zoom=settings.zoom,
        min_signal_fraction=settings.min_signal_fraction,
        html=args.html,
        key=args.key,
        device=args.device,
    )
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from ssimrecon.reader_study.analysis import analyze
    from ssimrecon.reader_study.answers import read_answers
    from ssimrecon.reader_study.key import methods_in_order, read_key
    from ssimrecon.reader_study.report import write_results

    key = read_key(args.key)
    readings = read_answers(args.answers, key)
    results = analyze(readings, methods_in_order(key), seed=args.seed)
    readers = sorted(set(readings["reader"]))
    write_results(
        results,
        csv=args.csv,
        md=args.md,
        png=args.png,
        session=key["session"].iloc[0],
        readers=readers,
        trials=key["trial"].nunique(),
    )
    log.info("reader study: %d readers -> %s, %s, %s", len(readers), args.csv, args.md, args.png)
    return 0
