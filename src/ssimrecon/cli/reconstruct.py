"""Commands ``reconstruct`` (trained models applied to new volumes; no workflow rule) and
``generalisation-set`` (the held-out real T1 volumes that ``make generalisation`` scores)."""

from __future__ import annotations

import argparse
from pathlib import Path


def reconstruct(argv: list[str]) -> int:
    """``ssimrecon reconstruct --model best.pt --input V.nii.gz|S.h5 --output R.nii.gz``, or
    ``--model best.pt --kspace FASTMRI.h5 --output R.nii.gz`` (measured multi-coil k-space), or
    ``--model A.pt [B.pt ...] --input FILE|DIR ... --output-dir DIR [--csv FILE]``, or
    ``--model A.pt ... --bids DATASET [--output-dir DIR]`` (a BIDS derivative dataset)."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon reconstruct",
        description="Reconstruct NIfTI volumes or k-space shards with trained models: each input "
        "is resampled to the model's training grid in mm, undersampled with its mask, "
        "reconstructed slice by slice and written back on the input's own grid.",
    )
    parser.add_argument("--model", type=Path, nargs="+", required=True, help="model bundles")
    parser.add_argument(
        "--input",
        type=Path,
        nargs="+",
        default=[],
        help="NIfTI volumes, k-space shards (.h5) or folders of NIfTI volumes",
    )
    parser.add_argument(
        "--kspace",
        type=Path,
        metavar="FILE.h5",
        help="a fastMRI multi-coil HDF5 file (kspace, reconstruction_rss, ismrmrd_header): its "
        "measured k-space undersampled with the model's mask (needs a multicoil model and "
        "--output)",
    )
    parser.add_argument(
        "--bids",
        type=Path,
        metavar="DATASET",
        help="every T1w volume of a BIDS dataset, written as a BIDS derivative dataset "
        "(default --output-dir DATASET/derivatives/ssimrecon)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, help="one input, one model: the NIfTI to write")
    where.add_argument(
        "--output-dir", type=Path, help="DIR/<stem>.nii.gz per input (DIR/<network>/ per model)"
    )
    parser.add_argument("--csv", type=Path, help="one row per volume (default DIR/reconstruct.csv)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass")
    args = parser.parse_args(argv)
    if args.kspace is not None:
        if args.input or args.bids is not None or args.output is None or len(args.model) > 1:
            parser.error("--kspace takes one --model and --output (no --input, --bids)")
        from ssimrecon.evaluation.reconstruct import reconstruct as run

        run(
            args.model[0],
            args.kspace,
            args.output,
            device=args.device,
            batch_size=args.batch_size,
            kind="fastmri",
        )
        return 0
    if (args.bids is None) == (not args.input):
        parser.error("give --input FILE|DIR ... or --bids DATASET (one of them)")
    if args.bids is not None and args.output is not None:
        parser.error("--bids writes a derivative dataset: use --output-dir (or its default)")
    if args.output is None and args.output_dir is None:
        if args.bids is None:
            parser.error("one of the arguments --output --output-dir is required")
        from ssimrecon.evaluation.bids_derivatives import default_output

        args.output_dir = default_output(args.bids)
    if args.output is not None and (len(args.model) > 1 or len(args.input) > 1 or args.csv):
        parser.error("--output takes one --model and one --input; use --output-dir for more")
    if args.output is not None:
        from ssimrecon.evaluation.reconstruct import reconstruct as run

        run(
            args.model[0],
            args.input[0],
            args.output,
            device=args.device,
            batch_size=args.batch_size,
        )
        return 0
    from ssimrecon.evaluation.reconstruct_set import reconstruct_many, summary_table

    table = reconstruct_many(
        args.model,
        args.input,
        args.output_dir,
        csv_path=args.csv,
        device=args.device,
        batch_size=args.batch_size,
        bids_dataset=args.bids,
    )
    print(summary_table(table))
    return 0


def generalisation_set(argv: list[str]) -> int:
    """``ssimrecon generalisation-set --output DIR``: write the held-out T1 volumes and
    DIR/manifest.csv."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon generalisation-set",
        description="Build the held-out real T1 volumes (Colin27 from Debian's mricron-data, "
        "nibabel's anatomical.nii) and scanner-like variants of them, deterministically.",
    )
    parser.add_argument("--output", type=Path, required=True, help="folder to write")
    parser.add_argument(
        "--colin", type=Path, help="Colin27 ch2.nii.gz (default: Debian mricron-data's)"
    )
    args = parser.parse_args(argv)
    from ssimrecon.evaluation.generalisation import build_generalisation_set, default_sources

    sources = default_sources()
    if args.colin is not None:
        sources["colin27"] = args.colin
    for row in build_generalisation_set(args.output, sources):
        print(f"{row['file']}  {row['shape']}  {row['voxel_mm']} mm  {row['orientation']}")
    return 0
