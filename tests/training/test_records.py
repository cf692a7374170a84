"""training.records: the run's progress as typed records, and the plain form last.pt stores."""

from __future__ import annotations

import math

from ssimrecon.training.history import history_columns
from ssimrecon.training.records import Best, EpochProgress, EpochRecord, Validation

TERMS = ("mse", "dssim")


def record(epoch: int, val_loss: float) -> EpochRecord:
    balance = {"val_dssim_over_mse_value": 1.5, "val_dssim_over_mse_grad": 0.4}
    validation = Validation(val_loss, {"mse": 0.02, "dssim": 0.3}, 0.0201, 0.81, 27.5, balance)
    return EpochRecord(epoch, 0.05, {"mse": 0.01, "dssim": 0.4}, validation, 12.5, 30.0, 1e-4)


def test_an_epoch_record_is_a_history_row_and_back() -> None:
    """The row has exactly history.csv's columns; ``val_mse`` is the per-image MSE (not the mse
    term's mean), and reading the row back gives a record with the same row."""
    row = record(3, 0.07).to_row()
    assert set(row) == set(history_columns(TERMS))
    assert row["val_mse"] == 0.0201 and row["train_dssim"] == 0.4 and row["epoch"] == 3
    again = EpochRecord.from_row(row, TERMS)
    assert again.to_row() == row and again.validation.ssim == 0.81
    assert again.validation.balance["val_dssim_over_mse_grad"] == 0.4
    # a state saved before the balance was recorded reads back with NaN there
    old = {k: v for k, v in row.items() if "_over_" not in k}
    assert math.isnan(
        EpochRecord.from_row(old, TERMS).validation.balance["val_dssim_over_mse_value"]
    )


def test_best_improves_only_on_a_finite_lower_loss() -> None:
    none = Best.none()
    assert none.epoch is None and math.isinf(none.val_loss)
    first = record(1, 0.07).validation
    assert none.improved_by(first)
    best = Best.of(1, first)
    assert best.scores() == {"val_loss": 0.07, "val_ssim": 0.81, "val_psnr": 27.5}
    assert not best.improved_by(record(2, 0.08).validation)
    assert not best.improved_by(record(2, math.nan).validation)
    assert best.improved_by(record(2, 0.06).validation)
    assert Best.from_state(best.to_state()) == best
    assert list(best.to_state()) == ["val_loss", "epoch", "val_ssim", "val_psnr"]


def test_epoch_progress_sums_and_its_state() -> None:
    progress = EpochProgress.fresh(2)
    progress.set_sums(1.5, [0.5, 2.0], 12)
    progress.add_seconds(3.0, 4.0)
    progress.add_seconds(1.0, 1.5)
    assert (progress.train_seconds, progress.epoch_seconds) == (4.0, 5.5)
    state = progress.to_state()
    assert state == {
        "loss_sum": 1.5,
        "term_sums": [0.5, 2.0],
        "slices": 12,
        "train_seconds": 4.0,
        "epoch_seconds": 5.5,
    }
    assert EpochProgress.from_state(state) == progress
