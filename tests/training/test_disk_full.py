"""`ssimrecon train` on a full disk: one line naming the file, the previous state kept, a rerun with
room resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from tests.helpers import REPO, mask_path_of, write_test_shards

MODEL = {"base_channels": 8, "depth": 2, "residual": True}
TRAINING = {
    "epochs": 3,
    "batch_size": 2,
    "seed": 0,
    "device": "cpu",
    "min_signal_fraction": 0.05,
    "max_train_batches": None,
    "lr": 1e-3,
    "crop": [24, 24],
    "num_workers": 0,
    "bf16": False,
    "channels_last": True,
    "gpus": 1,
    "compile": False,
    "instance_norm": "project",
}


def _train(shards: list[Path], out: Path, epochs: int) -> subprocess.CompletedProcess[str]:
    config = {"model": MODEL, "loss": {"mse": 1.0}, "training": {**TRAINING, "epochs": epochs}}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ssimrecon.cli",
            "train",
            "--network",
            "net",
            "--train-shards",
            *map(str, shards[:2]),
            "--val-shards",
            str(shards[2]),
            "--mask",
            str(mask_path_of(shards)),
            "--config-json",
            json.dumps(config),
            "--threads",
            "1",
            "--best",
            str(out / "best.pt"),
            "--history",
            str(out / "history.csv"),
            "--state-dir",
            str(out / "state"),
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
