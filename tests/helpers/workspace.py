"""Throw-away copies of the workflow whose config is the tiny experiment."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)


#: subjects in the tiny archive (tests/conftest.py): 4 train, 2 val, 2 test
TINY_SUBJECTS = 8

#: Overrides that shrink the demo to seconds: 8 subjects of 64x64x32 (4 train, 2 val, 2 test),
#: 16x32 images, 2 epochs.
TINY_CONFIG: dict = {
    "experiment": "tiny",
    "source": {"n_subjects": TINY_SUBJECTS},
    "split": {"n_train": 4, "n_val": 2, "seed": 1},
    "preprocessing": {"image_size": [16, 32], "downsample": 2, "slice_stride": 4},
    "mask": {"acceleration": 4, "center_size": 4},
    "model": {"base_channels": 4, "depth": 2, "residual": True},
    "training": {
        "epochs": 2,
        "batch_size": 4,
        "lr": 1.0e-3,
        "num_workers": 0,
        "threads": 1,
        "min_signal_fraction": 0.05,
        "crop": None,  # config.demo.yaml's training crop is larger than the tiny images
    },
    "evaluation": {"min_signal_fraction": 0.05},
    "figure": {"dpi": 60},
}
TINY_SHAPE = (64, 64, 32)
TINY_VOXEL = (3.75, 3.75, 4.8)


def deep_merge(base: dict, overrides: dict) -> dict:
    """Recursive dict update, as Snakemake merges several --configfile files."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class TinySource:
    url: str
    md5: str
    archive: Path


@dataclass
class Workspace:
    """A throw-away copy of the workflow whose config.yaml is the tiny experiment."""

    root: Path
    config: dict = field(default_factory=dict)

    @property
    def results(self) -> Path:
        return self.root / "results" / self.config["experiment"]

    def write_config(self, overrides: dict | None = None) -> dict:
        """Merge overrides into the current config and write it as the workspace's config.yaml."""
        self.config = deep_merge(self.config, overrides or {})
        (self.root / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.config

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONPATH", None)
        env.update(extra or {})
        # the jobs run this checkout's package (a git worktree shares the venv of another
        # checkout, whose editable install would otherwise be imported)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p
        )
        return env

    def snakemake(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess:
        """Run ``python -m snakemake ARGS`` in the workspace; output is captured as text."""
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", *args],
            cwd=self.root,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
            )
        return proc

    def clone(self, destination: Path) -> Workspace:
        """Copy the workspace with its results and Snakemake metadata (timestamps kept)."""
        shutil.copytree(self.root, destination, symlinks=True)
        return Workspace(root=destination, config=copy.deepcopy(self.config))


def make_workspace(root: Path, source: TinySource, overrides: dict | None = None) -> Workspace:
    """Copy Snakefile, workflow/, profiles/, envs/ and configs to ``root``; config.yaml = paper +
    demo + tiny."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", root / "Snakefile")
    for folder in ("workflow", "profiles", "envs"):
        shutil.copytree(REPO / folder, root / folder)
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    demo = yaml.safe_load((REPO / "config.demo.yaml").read_text())
    config = deep_merge(deep_merge(base, demo), TINY_CONFIG)
    config["source"].pop("demo", None)
    config["source"].update({"url": source.url, "md5": source.md5})
    workspace = Workspace(root=root, config=config)
    workspace.write_config(overrides)
    return workspace
