"""Command ``reconstruct``: a trained model applied to a new volume (no workflow rule)."""

from __future__ import annotations

import argparse
from pathlib import Path


def reconstruct(argv: list[str]) -> int:
    """``ssimrecon reconstruct --model best.pt --input V.nii.gz|S.h5 --output R.nii.gz``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon reconstruct",
        description="Reconstruct a NIfTI volume or a k-space shard with a trained model.",
    )
    parser.add_argument("--model", type=Path, required=True, help="model bundle (best.pt)")
    parser.add_argument(
        "--input", type=Path, required=True, help="NIfTI volume or k-space shard (.h5)"
    )
    parser.add_argument("--output", type=Path, required=True, help="reconstruction NIfTI (.nii.gz)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass")
    args = parser.parse_args(argv)
    from ssimrecon.evaluation.reconstruct import reconstruct as run

    run(args.model, args.input, args.output, device=args.device, batch_size=args.batch_size)
    return 0
