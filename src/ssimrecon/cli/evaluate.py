"""Command of workflow/rules/evaluate.smk: evaluate (library imported after parsing)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ssimrecon.cli.arguments import add_config_json
from ssimrecon.config.sections import load_settings
from ssimrecon.config.stages import EvaluateSettings

log = logging.getLogger(__name__)


def evaluate(argv: list[str]) -> int:
    """``ssimrecon evaluate --method NAME --shards S.h5 ... --mask M.npz (--model best.pt |
    --zero-filled) --config-json {"min_signal_fraction": F} --output M.csv --volumes
    M.volumes.csv``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon evaluate",
        description="Metrics of one method: per slice and region, and per volume (fastMRI).",
    )
    parser.add_argument(
        "--method", required=True, help="the method's name (a run, or zero-filled) in the log"
    )
    parser.add_argument("--shards", nargs="+", type=Path, required=True)
    parser.add_argument(
        "--mask", type=Path, required=True, help="undersampling mask .npz (masks/R<acc>.npz)"
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", type=Path, help="model bundle (best.pt)")
    which.add_argument("--zero-filled", action="store_true", help="score the zero-filled input")
    parser.add_argument("--output", type=Path, required=True, help="per-slice metrics CSV")
    parser.add_argument(
        "--volumes", type=Path, required=True, help="per-volume (fastMRI convention) metrics CSV"
    )
    add_config_json(parser, "evaluation.min_signal_fraction")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args(argv)
    settings = load_settings(args.config_json, EvaluateSettings, "evaluation")
    from ssimrecon.atomic import write_csv_atomic
    from ssimrecon.evaluation.evaluate import evaluate_shards

    result = evaluate_shards(
        args.shards,
        method=args.method,
        mask_path=args.mask,
        model_path=None if args.zero_filled else args.model,
        min_signal_fraction=settings.min_signal_fraction,
        batch_size=args.batch_size,
        device=args.device,
    )
    write_csv_atomic(result.slices, args.output)
    write_csv_atomic(result.volumes, args.volumes)
    scored = result.slices[result.slices["passes_filter"] & (result.slices["region"] == "frame")]
    log.info(
        "%s: %d slices of %d subjects (%d pass the filter: mean SSIM %.4f, PSNR %.2f dB) -> %s, %s",
        args.method,
        len(result.slices) // 2,
        len(result.volumes),
        len(scored),
        scored["ssim"].mean(),
        scored["psnr"].mean(),
        args.output,
        args.volumes,
    )
    return 0
