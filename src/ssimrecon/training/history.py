"""``history.csv``: one row per finished epoch of a training run (:func:`history_columns`: the
composite losses, one column per loss term for training and validation, validation MSE/SSIM/PSNR,
timing), rewritten by :func:`write_history`."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ssimrecon.atomic import write_text_atomic
from ssimrecon.training.records import balance_columns

__all__ = ["history_columns", "write_history"]


def history_columns(terms: Sequence[str]) -> tuple[str, ...]:
    """Columns of history.csv for a loss with ``terms`` (in the loss's order).

    ``train_loss``/``val_loss`` are the composite (weighted sum) losses, ``train_<term>``/
    ``val_<term>`` the unweighted terms (slice means), ``val_mse``/``val_ssim``/``val_psnr`` the
    validation metrics every network has (``val_mse`` doubles as the mse term's column), then the
    loss balance of a loss with several terms (:func:`~ssimrecon.training.records.balance_columns`,
    e.g. ``val_dssim_over_mse_value`` and ``val_dssim_over_mse_grad``: weighted dssim over weighted
    mse, in value and in the norm of its gradient w.r.t. the network output).  Losses, MSE and the
    balance are on the network's normalised axis (intensities / the volume's input scale).
    """
    val_terms = [f"val_{t}" for t in terms if t != "mse"]
    return (
        "epoch",
        "train_loss",
        *(f"train_{t}" for t in terms),
        "val_loss",
        *val_terms,
        "val_mse",
        "val_ssim",
        "val_psnr",
        *balance_columns(terms),
        "seconds",
        "slices_per_s",
        "lr",
    )


def write_history(path: Path, rows: Sequence[Mapping[str, Any]], terms: Sequence[str]) -> None:
    """Rewrite history.csv atomically with the :func:`history_columns` of ``terms``."""
    columns = history_columns(terms)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in columns})
    write_text_atomic(path, buf.getvalue())
