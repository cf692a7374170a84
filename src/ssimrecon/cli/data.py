"""Commands of workflow/rules/data.smk: demo-archive, download, extract, source-manifest, qc,
split.

Each function parses its arguments first and imports its library module afterwards, so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ssimrecon.cli.arguments import add_config_json
from ssimrecon.config.sections import load_settings
from ssimrecon.config.stages import DemoArchiveSettings, QcSettings, SplitSettings

log = logging.getLogger(__name__)


def demo_archive(argv: list[str]) -> int:
    """``ssimrecon demo-archive --output A.tar --config-json {source.demo}``; writes A.tar.md5."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon demo-archive",
        description="Build the demo T1 archive (real anatomy, IXI-style names).",
    )
    parser.add_argument(
        "--output", required=True, type=Path, help="tar file (its .md5 is written next to it)"
    )
    add_config_json(parser, "source.demo (subjects, seed, shape)")
    parser.add_argument(
        "--voxel",
        type=float,
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help="nominal voxel size in mm (default: the demo field of view 224x208x184 mm / shape)",
    )
    args = parser.parse_args(argv)
    settings = load_settings(args.config_json, DemoArchiveSettings, "source.demo")
    from ssimrecon.data.demo import build_demo_archive

    start = time.perf_counter()
    shape = tuple(settings.shape)
    digest = build_demo_archive(
        args.output,
        settings.subjects,
        settings.seed,
        shape,
        tuple(args.voxel) if args.voxel else None,
    )
    log.info(
        "demo archive %s: %d subjects %s in %.1fs, md5 %s",
        args.output,
        settings.subjects,
        "x".join(map(str, shape)),
        time.perf_counter() - start,
        digest,
    )
    return 0


def download(argv: list[str]) -> int:
    """``ssimrecon download --url U --output F [--md5 HEX | --md5-file F]``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon download",
        description="Resumable download over http(s)://, file:// or a local path, MD5-checked.",
    )
    parser.add_argument("--url", required=True, help="http(s):// URL, file:// URL or local path")
    parser.add_argument("--output", required=True, type=Path, help="destination file")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--md5", help="expected MD5 (32 hex digits)")
    group.add_argument(
        "--md5-file", type=Path, help="file with the MD5 (md5sum format or just the hex)"
    )
    parser.add_argument(
        "--retries", type=int, default=5, help="failures in a row without progress allowed"
    )
    parser.add_argument("--timeout", type=float, default=60, help="socket timeout in seconds")
    args = parser.parse_args(argv)
    from ssimrecon.data.download import download as fetch
    from ssimrecon.data.download import read_md5_file

    md5 = args.md5
    if args.md5_file is not None:
        md5 = read_md5_file(args.md5_file, name=args.output.name)
    if md5 is None:
        sys.stderr.write(
            f"warning: no --md5 or --md5-file given; the checksum of {args.output} is not checked\n"
        )
    fetch(args.url, args.output, md5, retries=args.retries, timeout=args.timeout)
    return 0


def extract(argv: list[str]) -> int:
    """``ssimrecon extract --archive A --output-dir D``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon extract", description="Safe extraction of a .tar / .tar.gz archive."
    )
    parser.add_argument("--archive", required=True, type=Path, help=".tar or .tar.gz archive")
    parser.add_argument("--output-dir", required=True, type=Path, help="directory to create")
    args = parser.parse_args(argv)
    from ssimrecon.data.archive import safe_extract

    safe_extract(args.archive, args.output_dir)
    return 0


def source_manifest(argv: list[str]) -> int:
    """``ssimrecon source-manifest --layout bids|folder|fastmri --root R --output
    manifest.csv``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon source-manifest",
        description="List the volumes of a local BIDS dataset or folder, or the *.h5 files of a "
        "fastMRI folder (read in place, never written) with their subject ids -> manifest.csv, "
        "the files QC reads.",
    )
    parser.add_argument("--layout", required=True, choices=("bids", "folder", "fastmri"))
    parser.add_argument("--root", required=True, type=Path, help="dataset root or folder")
    parser.add_argument("--output", required=True, type=Path, help="manifest.csv to write")
    args = parser.parse_args(argv)
    from ssimrecon.data.sources import list_source, write_manifest

    files = list_source(args.layout, args.root.absolute())
    write_manifest(files, args.output)
    log.info(
        "wrote %s: %d volumes of %s source %s", args.output, len(files), args.layout, args.root
    )
    return 0


def qc(argv: list[str]) -> int:
    """``ssimrecon qc (--input-dir D | --manifest M [--fastmri-acquisitions A,B]) --output
    subjects.csv --config-json {"exclude": [...]}``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon qc", description="Check every NIfTI volume of a source -> subjects.csv."
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--input-dir", type=Path, help="folder of *.nii.gz / *.nii (e.g. the extracted archive)"
    )
    where.add_argument(
        "--manifest", type=Path, help="manifest.csv from `ssimrecon source-manifest`"
    )
    parser.add_argument(
        "--fastmri-acquisitions",
        default=None,
        help="the manifest lists fastMRI multi-coil files: keep those whose 'acquisition' "
        "attribute is one of these (comma-separated, e.g. AXT1,AXT1PRE,AXT1POST)",
    )
    parser.add_argument("--output", required=True, type=Path, help="subjects.csv to write")
    add_config_json(parser, "{exclude: [subject id, relative path or file name, ...]}")
    args = parser.parse_args(argv)
    if args.fastmri_acquisitions is not None and args.manifest is None:
        parser.error("--fastmri-acquisitions needs --manifest")
    settings = load_settings(args.config_json, QcSettings, "config")
    from ssimrecon.atomic import write_csv_atomic
    from ssimrecon.data.qc import build_subjects_table, subjects_table
    from ssimrecon.data.sources import read_manifest

    if args.fastmri_acquisitions is not None:
        from ssimrecon.kspace.fastmri_source import inspect_fastmri, select_acquisitions

        wanted = [a.strip() for a in args.fastmri_acquisitions.split(",") if a.strip()]
        files = select_acquisitions(read_manifest(args.manifest), wanted, set(settings.exclude))
        table = subjects_table(
            files, set(settings.exclude), str(args.manifest), inspect=inspect_fastmri
        )
    elif args.manifest is not None:
        files = read_manifest(args.manifest)
        table = subjects_table(files, set(settings.exclude), str(args.manifest))
    else:
        table = build_subjects_table(args.input_dir, set(settings.exclude))
    write_csv_atomic(table, args.output)
    log.info("wrote %s (%d subjects)", args.output, len(table))
    return 0


def split(argv: list[str]) -> int:
    """``ssimrecon split --subjects subjects.csv --output split.csv --config-json {split}``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon split",
        description="Deterministic train/validation/test split -> split.csv.",
    )
    parser.add_argument(
        "--subjects", required=True, type=Path, help="subjects.csv from `ssimrecon qc`"
    )
    parser.add_argument("--output", required=True, type=Path, help="split.csv to write")
    add_config_json(parser, "split (n_train, n_val, n_test, seed)")
    args = parser.parse_args(argv)
    settings = load_settings(args.config_json, SplitSettings, "split")
    from ssimrecon.atomic import write_csv_atomic
    from ssimrecon.data.split import make_split, read_participants

    participants = read_participants(args.subjects)
    subjects = list(participants)
    table = make_split(
        subjects, settings.n_train, settings.n_val, settings.n_test, settings.seed, participants
    )
    write_csv_atomic(table, args.output)
    counts = table["split"].value_counts()
    log.info(
        "wrote %s: %d train, %d val, %d test of %d subjects, %d participants (seed %d)",
        args.output,
        counts.get("train", 0),
        counts.get("val", 0),
        counts.get("test", 0),
        len(subjects),
        len(set(participants.values())),
        settings.seed,
    )
    return 0
