"""Temporary copies of the workflow for the ``demo`` and ``dag`` rows."""

from __future__ import annotations

import shutil
from pathlib import Path

from ssimrecon_bench.core import BenchError

WORKFLOW_FILES = ("Snakefile", "config.yaml", "config.demo.yaml")
WORKFLOW_DIRS = ("workflow", "profiles", "envs")


def copy_workflow(src: Path, dst: Path) -> Path:
    """Copy the workflow (Snakefile, configs, workflow/, profiles/, envs/) without any results."""
    src, dst = Path(src), Path(dst)
    if not (src / "Snakefile").is_file():
        raise BenchError(
            f"no Snakefile in {src} (run from the repository root or pass --workflow-dir)"
        )
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    for name in WORKFLOW_DIRS:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dst
