"""training.history: history.csv has one column per loss term."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssimrecon.training.history import history_columns, write_history


def test_history_has_a_column_per_loss_term(tmp_path: Path) -> None:
    expected = "epoch train_loss train_mse train_dssim val_loss val_dssim val_mse val_ssim val_psnr"
    balance = ("val_dssim_over_mse_value", "val_dssim_over_mse_grad")
    assert history_columns(["mse", "dssim"]) == (
        *expected.split(),
        *balance,
        "seconds",
        "slices_per_s",
        "lr",
    )
    assert not any("_over_" in c for c in history_columns(["mse"]))  # one term: no balance
    assert "train_edge" in history_columns(["l1", "edge"])
    assert "val_mse" in history_columns(["l1"])  # the shared validation metric
    row = dict.fromkeys(history_columns(["l1"]), 1.5)
    write_history(tmp_path / "h.csv", [row], ["l1"])
    header, line = (tmp_path / "h.csv").read_text().splitlines()
    assert header.split(",") == list(history_columns(["l1"])) and line.split(",")[2] == "1.5"
    with pytest.raises(KeyError, match="train_edge"):
        write_history(tmp_path / "h.csv", [row], ["l1", "edge"])


def test_the_balance_compares_with_mse_whatever_the_terms_order() -> None:
    """The config's JSON sorts the loss terms (dssim before mse); the balance is still dssim over
    mse, and a loss without mse compares with its first term."""
    cols = history_columns(["dssim", "mse"])
    assert "val_dssim_over_mse_value" in cols and "val_dssim_over_mse_grad" in cols
    assert not any("_over_dssim" in c for c in cols)
    assert "val_edge_over_l1_grad" in history_columns(["l1", "edge"])
