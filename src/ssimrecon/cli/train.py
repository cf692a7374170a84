"""Commands of workflow/rules/train.smk: train, curves (library imported after parsing)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ssimrecon.cli.arguments import add_config_json, parse_pairs
from ssimrecon.config.sections import load_settings
from ssimrecon.config.stages import TrainJob
from ssimrecon.errors import SsimreconError
from ssimrecon.training.tcmalloc import cli_preload

log = logging.getLogger(__name__)


def train(argv: list[str]) -> int:
    """``ssimrecon train --network N --train-shards ... --val-shards ... --mask M.npz --config-json
    {model, loss, training} --best B.pt --history H.csv --state-dir D``; exit 128+signum when
    stopped by SIGTERM/SIGUSR1."""
    cli_preload("train")  # re-exec with tcmalloc (same pid) when started as `ssimrecon train`
    parser = argparse.ArgumentParser(prog="ssimrecon train", description="Train one network.")
    parser.add_argument("--network", required=True, help="network name (logs and the bundle)")
    parser.add_argument("--train-shards", nargs="+", required=True, type=Path)
    parser.add_argument("--val-shards", nargs="+", required=True, type=Path)
    parser.add_argument(
        "--mask", required=True, type=Path, help="undersampling mask .npz (masks/R<acc>.npz)"
    )
    add_config_json(
        parser,
        "model (with the network's overrides), loss (the network's terms) and training "
        "(without threads)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--best", required=True, type=Path, help="best model bundle (.pt)")
    parser.add_argument("--history", required=True, type=Path, help="history.csv")
    parser.add_argument(
        "--state-dir", required=True, type=Path, help="resumable state (last.pt, best.pt)"
    )
    parser.add_argument(
        "--tensorboard", type=Path, default=None, metavar="DIR", help="also log to TensorBoard here"
    )
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise SsimreconError(f"--threads: must be >= 1, got {args.threads}")
    job = load_settings(args.config_json, TrainJob, "config")
    import torch

    from ssimrecon.training.loop import Trainer
    from ssimrecon.training.signals import TrainingInterrupted

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        summary = Trainer(
            args.train_shards,
            args.val_shards,
            mask_path=args.mask,
            model_cfg=job.model,
            loss_terms=job.loss,
            settings=job.training,
            best_path=args.best,
            history_path=args.history,
            state_dir=args.state_dir,
            network_name=args.network,
            tensorboard_dir=args.tensorboard,
        ).fit()
    except TrainingInterrupted as exc:
        return exc.exit_code
    log.info("summary %s", json.dumps(summary, default=str))
    return 0


def curves(argv: list[str]) -> int:
    """``ssimrecon curves --history NAME=PATH ... --output PNG``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon curves", description="Plot training curves of every network."
    )
    parser.add_argument(
        "--history", nargs="+", required=True, metavar="NAME=PATH", help="history.csv per network"
    )
    parser.add_argument("--output", required=True, type=Path, help="output PNG")
    parser.add_argument("--dpi", type=int, default=120)
    args = parser.parse_args(argv)
    histories = parse_pairs(args.history, "--history")
    from ssimrecon.plots.curves import plot_training_curves

    plot_training_curves(histories, args.output, dpi=args.dpi)
    return 0
