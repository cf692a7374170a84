"""training.checkpointer: last.pt is read only when it is a training state of this version; the
Checkpointer saves, resumes and moves aside the run's files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssimrecon.errors import CheckpointError
from ssimrecon.training.checkpointer import STATE_FORMAT, STATE_VERSION, Checkpointer, load_state
from ssimrecon.training.records import Best, EpochProgress, EpochRecord, Validation


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


def test_a_saved_state_resumes_with_its_records_and_another_configuration_is_moved_aside(
    tmp_path: Path,
) -> None:
    """save -> resume gives back position, records and weights; the state it replaced is kept as
    last.prev.pt; a checkpointer of another fingerprint moves all three files aside as .stale."""
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    files = Checkpointer(
        tmp_path / "state", tmp_path / "best.pt", fingerprint="a", network="n", terms=["mse"]
    )
    assert files.resume() is None and files.state_dir.is_dir()
    validation = Validation(0.5, {"mse": 0.5}, 0.5, 0.7, 20.0)
    history = [EpochRecord(1, 0.6, {"mse": 0.6}, validation, 1.0, 10.0, 1e-3)]
    progress = EpochProgress(2.0, [2.0], 4, 1.5, 2.0)
    for epoch in (1, 2):
        files.save(
            model=model,
            optimizer=optimizer,
            device=torch.device("cpu"),
            epoch=epoch,
            next_batch=3,
            best=Best.of(1, validation),
            history=history,
            progress=progress,
            stopped_by="SIGUSR1",
        )
    assert files.previous_path.is_file() and load_state(files.previous_path)["epoch"] == 1
    state = files.resume()
    assert state is not None and (state.epoch, state.next_batch) == (2, 3)
    assert state.best == Best.of(1, validation) and state.history == history
    assert state.progress == progress and state.stopped_by == "SIGUSR1"
    assert torch.equal(state.model["weight"], model.weight.detach())
    files.state_best.write_bytes(b"bundle")
    other = Checkpointer(
        files.state_dir, tmp_path / "best.pt", fingerprint="b", network="n", terms=["mse"]
    )
    assert other.resume() is None
    assert sorted(p.name for p in files.state_dir.iterdir()) == [
        "best.pt.stale",
        "last.prev.pt.stale",
        "last.pt.stale",
    ]
