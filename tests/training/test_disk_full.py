"""`ssimrecon train` on a full disk: one line naming the file, the previous state kept, a rerun with
room resumes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from tests.helpers.shards import write_test_shards
from tests.helpers.training import TINY_TRAINING, train_arguments
from tests.helpers.workspace import REPO

MODEL = {"base_channels": 8, "depth": 2, "residual": True}


def _train(shards: list[Path], out: Path, epochs: int) -> subprocess.CompletedProcess[str]:
    training = {**TINY_TRAINING, "epochs": epochs}
    config = {"model": MODEL, "loss": {"mse": 1.0}, "training": training}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ssimrecon.cli",
            *train_arguments(shards[:2], shards[2:], config, out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_training_on_a_full_disk_stops_with_one_line_and_resumes_with_room(
    small_disk: Path, tmp_path: Path
) -> None:
    """A 2 MiB file system with room for one training state and a half: epoch 1's state is written,
    epoch 2's is not. Mutation tried: without DiskFullError the CLI ends in a RuntimeError
    traceback."""
    shards = write_test_shards(tmp_path / "shards", n_subjects=3, n_slices=4, empty=0, seed=2)
    probe = _train(shards, tmp_path / "probe", epochs=1)
    assert probe.returncode == 0, probe.stderr
    state_bytes = (tmp_path / "probe" / "state" / "last.pt").stat().st_size
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (2 * 1024 * 1024 - 3 * state_bytes // 2 - 64 * 1024))

    out = small_disk / "run"
    full = _train(shards, out, epochs=3)
    assert full.returncode == 2, full.stderr
    last_line = full.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: No space left on device writing "), full.stderr[-2000:]
    assert "Traceback" not in full.stderr
    state = out / "state" / "last.pt"
    assert int(torch.load(state, weights_only=True)["epoch"]) == 1  # resumes after epoch 1: intact
    assert [p.name for p in out.rglob("*") if ".tmp" in p.name] == []

    filler.unlink()
    again = _train(shards, out, epochs=3)
    assert again.returncode == 0, again.stderr
    assert "resuming net from epoch 2" in again.stderr
    assert int(torch.load(state, weights_only=True)["epoch"]) == 3
    assert (out / "best.pt").exists()
