"""``ssimrecon <command> ...``: dispatch to one function per workflow stage.

:data:`COMMANDS` maps each command to ``"module:function"`` and a one-line description; the
command's module (``ssimrecon.cli.data``, ``.kspace``, ``.train``, ``.evaluate``, ``.report``,
``.reconstruct``; one per workflow rule file) is imported only when the command runs, and imports
the heavy libraries (torch, matplotlib) only after argparse has parsed.  Logging is configured here,
once, for every command (:func:`configure_logging`); library modules only create loggers.
"""

from __future__ import annotations

import importlib
import logging
import sys

from ssimrecon import __version__
from ssimrecon.errors import SsimreconError

#: command -> ("module:function" taking argv and returning the exit status, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-archive": ("ssimrecon.cli.data:demo_archive", "build the demo archive (real anatomy)"),
    "download": ("ssimrecon.cli.data:download", "download the archive (resumable, MD5-checked)"),
    "extract": ("ssimrecon.cli.data:extract", "extract a .tar/.tar.gz archive safely"),
    "source-manifest": (
        "ssimrecon.cli.data:source_manifest",
        "list a local BIDS dataset or folder of NIfTI files (read in place)",
    ),
    "qc": ("ssimrecon.cli.data:qc", "check every NIfTI volume -> subjects.csv"),
    "split": ("ssimrecon.cli.data:split", "seeded train/validation split -> split.csv"),
    "mask": ("ssimrecon.cli.kspace:mask", "seeded variable-density undersampling mask"),
    "shard": ("ssimrecon.cli.kspace:shard", "simulate one subject's k-space shard (.h5)"),
    "image-size": (
        "ssimrecon.cli.kspace:image_size",
        "the slice size image_size: auto stands for, from subjects.csv",
    ),
    "export-kspace": (
        "ssimrecon.cli.kspace:export_kspace",
        "standalone HDF5 of a shard's undersampled k-space for one mask",
    ),
    "train": ("ssimrecon.cli.train:train", "train one network (resumable)"),
    "curves": ("ssimrecon.cli.train:curves", "plot the training curves of every network"),
    "evaluate": ("ssimrecon.cli.evaluate:evaluate", "per-slice SSIM/PSNR/error of one method"),
    "table": ("ssimrecon.cli.report:table", "Table 1: means and p-values per method"),
    "figure2": ("ssimrecon.cli.report:figure2", "Figure 2: reconstructions and error maps"),
    "study-table": ("ssimrecon.cli.study:study_table", "study.csv: test metrics of every run"),
    "seed-average": (
        "ssimrecon.cli.study:seed_average",
        "one condition's metrics averaged over its seeds",
    ),
    "study-figure": ("ssimrecon.cli.study:study_figure", "SSIM and PSNR against the loss weight"),
    "summary": ("ssimrecon.cli.report:summary", "list an experiment's outputs and Table 1"),
    "reconstruct": (
        "ssimrecon.cli.reconstruct:reconstruct",
        "reconstruct a NIfTI volume or shard with a trained model",
    ),
    "generalisation-set": (
        "ssimrecon.cli.reconstruct:generalisation_set",
        "write the held-out real T1 volumes of make generalisation",
    ),
    "reader-study": (
        "ssimrecon.cli.reader_study:reader_study",
        "blinded reader study: make the HTML reading page, analyze the answers",
    ),
    "bench": ("ssimrecon_bench.cli:main", "benchmark the SSIM loss and training step"),
}

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"
#: libraries whose INFO messages are not the job's news: only their warnings reach the log
QUIET_LOGGERS = ("fontTools", "matplotlib", "PIL", "h5py")


def configure_logging() -> None:
    """INFO and above to stderr as ``<date time> <LEVEL> <logger>: <message>``.

    ``logging.basicConfig``: a no-op when the root logger already has handlers (an embedding
    application, pytest's log capture), so calling :func:`main` from Python never stacks handlers.
    """
    logging.basicConfig(
        level=logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATEFMT, stream=sys.stderr
    )
    for chatty in QUIET_LOGGERS:  # their INFO lines (PDF font subsetting, ...) drown a job's log
        logging.getLogger(chatty).setLevel(logging.WARNING)


def usage() -> str:
    """The ``ssimrecon --help`` text: every command with its one-line description."""
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items())
    return (
        "usage: ssimrecon <command> [options]   (ssimrecon <command> --help for its options)\n"
        f"       ssimrecon --version\n\ncommands:\n{rows}\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors (SsimreconError) print ``error: <msg>`` and return 2."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:  # a command is required: usage on stderr, as for any other usage error
        sys.stderr.write(f"error: no command given\n{usage()}")
        return 2
    if args[0] in {"-h", "--help"}:
        sys.stdout.write(usage())
        return 0
    if args[0] == "--version":
        sys.stdout.write(f"ssimrecon {__version__}\n")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        sys.stderr.write(f"error: unknown command {command!r}\n{usage()}")
        return 2
    configure_logging()
    module_name, function_name = COMMANDS[command][0].split(":")
    run = getattr(importlib.import_module(module_name), function_name)
    try:
        return int(run(rest) or 0)
    except SsimreconError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
