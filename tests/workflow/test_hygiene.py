"""Workflow hygiene: the .test config lints and dry-runs, rule resources survive --set-resources,
and hostile config values reach the shell quoted, never executed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.workspace import REPO, TINY_SUBJECTS, TinySource, Workspace

pytestmark = pytest.mark.workflow

TEST_CONFIGS = [str(REPO / name) for name in ("config.yaml", "config.demo.yaml")] + [
    str(REPO / ".test" / "config" / "config.yaml")
]


def _snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_dot_test_config_lints_and_dry_runs(tmp_path: Path) -> None:
    lint = _snakemake("--lint", "--configfile", *TEST_CONFIGS, cwd=tmp_path)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Congratulations, your workflow is in a good condition" in lint.stdout + lint.stderr
    dry = _snakemake("-n", "--cores", "1", "--configfile", *TEST_CONFIGS, cwd=tmp_path)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    text = dry.stdout + dry.stderr
    assert re.search(r"^train\s+2$", text, re.MULTILINE), text[-3000:]
    assert "results/test/source/IXI-T1-demo.tar" in text
    assert not (tmp_path / "results").exists()


def _resources_of(text: str, rule: str) -> list[str]:
    """The `resources:` lines of every planned job of ``rule`` in a dry run."""
    blocks = re.findall(rf"^rule {rule}:\n((?:    .*\n)+)", text, re.MULTILINE)
    return [line for block in blocks for line in block.splitlines() if "resources:" in line]


def test_set_resources_for_other_rules_keeps_the_training_gpu(workspace: Workspace) -> None:
    proc = workspace.snakemake(
        "-n", "--cores", "1", "--set-resources", "evaluate:mem_mb=100", "train:runtime=7"
    )
    train = _resources_of(proc.stdout + proc.stderr, "train")
    assert len(train) == 2
    for line in train:
        assert "gpu=1" in line and "runtime=7" in line and "mem_mb=32000" in line
    evaluate = _resources_of(proc.stdout + proc.stderr, "evaluate")
    assert evaluate and all("gpu=1" in line and "mem_mb=100," in line for line in evaluate)


HOSTILE_EXCLUDE = ["IXI999; touch INJECTED", "$(touch INJ2)", "`touch INJ3`"]


def test_hostile_config_values_reach_the_shell_quoted(
    workspace: Workspace, tiny_source: TinySource
) -> None:
    """Exclude ids and a source path with spaces, `;`, `$(...)` and backticks: the data rules run on
    them for real and nothing is executed."""
    folder = workspace.root / "my data; touch INJ4"
    folder.mkdir()
    archive = folder / "IXI T1 $(touch INJ5).tar"
    shutil.copy2(tiny_source.archive, archive)
    workspace.write_config(
        {
            "exclude": HOSTILE_EXCLUDE,  # count against the tiny subjects: a smaller split
            "split": {"n_train": 2, "n_val": 1},
            "source": {"url": str(archive)},
        }
    )
    target = str(workspace.results.relative_to(workspace.root) / "subjects.csv")
    proc = workspace.snakemake("--cores", "1", "--printshellcmds", target)
    text = proc.stdout + proc.stderr
    assert "--url '" + str(archive) + "'" in text
    assert "touch INJECTED" in text  # printed inside a quoted JSON string, not run
    injected = [p.name for p in workspace.root.rglob("INJ*")]
    assert injected == [], injected
    assert len((workspace.results / "subjects.csv").read_text().splitlines()) == 1 + TINY_SUBJECTS
