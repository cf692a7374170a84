"""training.state: last.pt is read only when it is a training state of this version; history.csv has
one column per loss term."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssimrecon.errors import CheckpointError
from ssimrecon.training.state import (
    STATE_FORMAT,
    STATE_VERSION,
    history_columns,
    load_state,
    write_history,
)


def test_load_state_checks_format_and_version(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    torch.save({"format": STATE_FORMAT, "version": STATE_VERSION, "epoch": 3}, path)
    assert load_state(path)["epoch"] == 3
    torch.save({"format": "ssimrecon-model", "version": STATE_VERSION}, path)
    with pytest.raises(CheckpointError, match=r"last\.pt: not an ssimrecon training state"):
        load_state(path)
    torch.save({"format": STATE_FORMAT, "version": STATE_VERSION + 1}, path)
    with pytest.raises(
        CheckpointError, match=rf"last\.pt: unsupported training state version {STATE_VERSION + 1}"
    ):
        load_state(path)
    torch.save({"format": STATE_FORMAT, "version": 1}, path)  # before the loss terms were logged
    with pytest.raises(CheckpointError, match=r"version 1"):
        load_state(path)


def test_history_has_a_column_per_loss_term(tmp_path: Path) -> None:
    assert history_columns(["mse", "dssim"]) == (
        "epoch",
        "train_loss",
        "train_mse",
        "train_dssim",
        "val_loss",
        "val_dssim",
        "val_mse",
        "val_ssim",
        "val_psnr",
        "seconds",
        "slices_per_s",
        "lr",
    )
    assert "train_edge" in history_columns(["l1", "edge"])
    assert "val_mse" in history_columns(["l1"])  # the shared validation metric
    row = dict.fromkeys(history_columns(["l1"]), 1.5)
    write_history(tmp_path / "h.csv", [row], ["l1"])
    header, line = (tmp_path / "h.csv").read_text().splitlines()
    assert header.split(",") == list(history_columns(["l1"])) and line.split(",")[2] == "1.5"
    with pytest.raises(KeyError, match="train_edge"):
        write_history(tmp_path / "h.csv", [row], ["l1", "edge"])
