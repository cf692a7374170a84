"""`ssimrecon <stage> ...`: one sub-command per workflow stage, each a thin shell over its module."""
from __future__ import annotations

import importlib
import sys

from ssimrecon.errors import SsimreconError

#: sub-command -> module exposing ``main(argv) -> int``
COMMANDS: dict[str, str] = {
    "download": "ssimrecon.download",
    "extract": "ssimrecon.archive",
    "qc": "ssimrecon.qc",
    "split": "ssimrecon.split",
    "demo-archive": "ssimrecon.demo_data",
    "mask": "ssimrecon.mask",
    "shard": "ssimrecon.shards",
    "train": "ssimrecon.train",
    "curves": "ssimrecon.curves",
    "evaluate": "ssimrecon.evaluate",
    "table": "ssimrecon.table",
    "figure2": "ssimrecon.figure2",
    "reconstruct": "ssimrecon.reconstruct",
    "summary": "ssimrecon.summary",
    "bench": "ssimrecon.bench",
}


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
    module = importlib.import_module(COMMANDS[command])
    try:
        return int(module.main(rest) or 0)
    except SsimreconError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
