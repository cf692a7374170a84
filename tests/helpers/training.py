"""Tiny training runs: every training setting, and ``ssimrecon train`` arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers.shards import mask_path_of

#: every training setting (TrainSettings has no defaults) for tiny CPU runs on write_test_shards
#: data; tests override what they vary
TINY_TRAINING: dict[str, Any] = {
    "epochs": 1,
    "batch_size": 2,
    "seed": 0,
    "device": "cpu",
    "min_signal_fraction": 0.05,
    "max_train_batches": None,
    "lr": 1e-3,
    "lr_schedule": "constant",
    "crop": [24, 24],
    "crop_focus": "uniform",
    "num_workers": 0,
    "bf16": False,
    "channels_last": True,
    "gpus": 1,
    "compile": False,
    "instance_norm": "project",
}


def train_arguments(
    train: list[Path], val: list[Path], config: dict[str, Any], out: Path, threads: int = 1
) -> list[str]:
    """``ssimrecon train`` arguments (after the program) for network ``net`` writing best.pt,
    history.csv and state/ under ``out``; the mask is write_test_shards' (:func:`mask_path_of`)."""
    return [
        "train",
        "--network",
        "net",
        "--train-shards",
        *map(str, train),
        "--val-shards",
        *map(str, val),
        "--mask",
        str(mask_path_of(train)),
        "--config-json",
        json.dumps(config),
        "--threads",
        str(threads),
        "--best",
        str(out / "best.pt"),
        "--history",
        str(out / "history.csv"),
        "--state-dir",
        str(out / "state"),
    ]
