"""`ssimrecon <stage> ...`: one sub-command per workflow stage, each a thin shell over its module.

Logging is configured here, once, for every stage (:func:`configure_logging`); stage modules only
create loggers.
"""

from __future__ import annotations

import importlib
import logging
import sys

from ssimrecon.errors import SsimreconError

#: sub-command -> module exposing ``main(argv) -> int``
COMMANDS: dict[str, str] = {
    "download": "ssimrecon.data.download",
    "extract": "ssimrecon.data.archive",
    "qc": "ssimrecon.data.qc",
    "split": "ssimrecon.data.split",
    "demo-archive": "ssimrecon.data.demo",
    "mask": "ssimrecon.kspace.mask",
    "shard": "ssimrecon.kspace.shards",
    "train": "ssimrecon.training.loop",
    "curves": "ssimrecon.plots.curves",
    "evaluate": "ssimrecon.evaluation.evaluate",
    "table": "ssimrecon.evaluation.table",
    "figure2": "ssimrecon.plots.figure2",
    "reconstruct": "ssimrecon.evaluation.reconstruct",
    "summary": "ssimrecon.evaluation.summary",
    "bench": "ssimrecon_bench.suite",
}


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"


def configure_logging() -> None:
    """INFO and above to stderr as ``<date time> <LEVEL> <logger>: <message>``.

    ``logging.basicConfig``: a no-op when the root logger already has handlers (an embedding
    application,
    pytest's log capture), so calling :func:`main` from Python never stacks handlers.
    """
    logging.basicConfig(
        level=logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATEFMT, stream=sys.stderr
    )


def _usage() -> str:
    names = "\n  ".join(sorted(COMMANDS))
    return f"usage: ssimrecon <command> [options]\n\ncommands:\n  {names}\n"


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the stage's ``main``; user errors print one line and exit with status 2."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in {"-h", "--help"}:
        sys.stdout.write(_usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        sys.stderr.write(f"error: unknown command {command!r}\n{_usage()}")
        return 2
    configure_logging()
    module = importlib.import_module(COMMANDS[command])
    try:
        return int(module.main(rest) or 0)
    except SsimreconError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
