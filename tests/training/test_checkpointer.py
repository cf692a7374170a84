"""training.checkpointer: last.pt is read only when it is a training state of this version."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssimrecon.errors import CheckpointError
from ssimrecon.training.checkpointer import STATE_FORMAT, STATE_VERSION, load_state


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
