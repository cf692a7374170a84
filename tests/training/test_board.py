"""TensorBoard logging of a run (``ssimrecon train --tensorboard DIR``, ``training.tensorboard``):
what the event files hold, read back with TensorBoard's own reader, and the run's ETA line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ssimrecon.cli import main as cli_main
from ssimrecon.training import board as board_module
from ssimrecon.training.loop import run_eta
from ssimrecon.training.records import EpochRecord, Validation
from tests.helpers.shards import write_test_shards
from tests.helpers.training import TINY_TRAINING, train_arguments


def _events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def test_a_run_logs_step_and_epoch_scalars_and_validation_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(board_module, "STEP_EVERY", 2)
    paths = write_test_shards(tmp_path / "shards", n_subjects=3, n_slices=4, seed=2)
    config = {"model": {"base_channels": 4, "depth": 2}, "loss": {"mse": 1.0, "dssim": 0.1}}
    config["training"] = {**TINY_TRAINING, "epochs": 3}
    args = train_arguments(paths[:2], paths[2:], config, tmp_path / "run")
    caplog.set_level(logging.INFO, logger="ssimrecon.training.loop")
    assert cli_main([*args, "--tensorboard", str(tmp_path / "tb")]) == 0

    events = _events(tmp_path / "tb")
    tags = events.Tags()
    for tag in ("val/ssim", "val/psnr", "val/loss", "val/dssim", "train/mse", "lr"):
        assert [e.step for e in events.Scalars(tag)] == [1, 2, 3], tag
    history = _history(tmp_path / "run" / "history.csv")
    logged = [e.value for e in events.Scalars("val/ssim")]
    assert logged == pytest.approx([float(r["val_ssim"]) for r in history], rel=1e-6)
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps and all(s % 2 == 0 for s in steps) and steps == sorted(steps)
    assert set(tags["images"]) == {"val/slice0", "val/slice1"}
    image = events.Images("val/slice0")
    assert [i.step for i in image] == [1, 2, 3]
    assert image[0].width == 4 * image[0].height  # zero-filled | output | reference | error
    etas = [m.rsplit("run ETA ", 1)[1] for m in caplog.messages if "run ETA" in m]
    assert len(etas) == 3 and etas[-1] == "0:00:00"


def _history(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_without_the_option_nothing_is_written(tmp_path: Path) -> None:
    board = board_module.TrainingBoard(None)
    assert not board.enabled and not board.wants_step(0)
    board.close()
    assert board_module.TrainingBoard(tmp_path / "tb", is_main=False).enabled is False
    assert not (tmp_path / "tb").exists()


def test_run_eta_is_the_epochs_left_times_the_mean_epoch() -> None:
    val = Validation(loss=1.0, terms={}, mse=1.0, ssim=0.5, psnr=20.0)
    rows = [EpochRecord(e, 1.0, {}, val, s, 10.0, 1e-3) for e, s in ((1, 30.0), (2, 90.0))]
    assert run_eta(rows, 10) == "0:08:00"  # 8 epochs x 60 s
    assert run_eta(rows, 2) == "0:00:00" and run_eta([], 5) == "?"
