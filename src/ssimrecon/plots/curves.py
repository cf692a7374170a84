"""training_curves.png: networks compared on shared quantities, each network's own loss apart.

Reads the history.csv files written by :mod:`ssimrecon.training.loop` (columns
:func:`~ssimrecon.training.history.history_columns`).  Top row, one line per network: validation MSE
(log scale, units of the squared robust-maximum scale), validation SSIM, validation PSNR (dB): the
quantities every network has.  Bottom row, one panel per network: that network's own composite loss
(training dashed, validation solid); different losses never share an axis.  The best epoch (lowest
validation loss: the checkpoint that is kept) is a dot in every panel; epoch ticks are integers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ssimrecon.atomic import atomic_output
from ssimrecon.errors import SsimreconError

REQUIRED = ("epoch", "train_loss", "val_loss", "val_mse", "val_ssim", "val_psnr")
#: (column, panel title, y label) of the shared panels in the top row.
SHARED = (
    ("val_mse", "Validation MSE", "MSE (scale²)"),
    ("val_ssim", "Validation SSIM", "SSIM"),
    ("val_psnr", "Validation PSNR", "PSNR (dB)"),
)

__all__ = ["read_history", "loss_terms_of", "draw_training_curves", "plot_training_curves"]


def read_history(path: Path | str) -> pd.DataFrame:
    """Read a history.csv; errors name the file and the missing columns."""
    path = Path(path)
    if not path.is_file():
        raise SsimreconError(f"{path}: history file does not exist")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SsimreconError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise SsimreconError(f"{path}: history is missing columns {missing}")
    if table.empty:
        raise SsimreconError(f"{path}: history has no epochs")
    return table.sort_values("epoch")


def loss_terms_of(table: pd.DataFrame) -> list[str]:
    """The loss terms a history logs (its ``train_<term>`` columns), in column order."""
    return [
        c.removeprefix("train_")
        for c in table.columns
        if c.startswith("train_") and c != "train_loss"
    ]


def _best_row(table: pd.DataFrame) -> pd.Series | None:
    """The row of the lowest finite validation loss (None if there is none)."""
    finite = table["val_loss"].map(lambda v: math.isfinite(float(v)))
    return table.loc[table.loc[finite, "val_loss"].idxmin()] if finite.any() else None


def _style(ax: Axes, title: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _positive(*series: pd.Series) -> bool:
    return all((s > 0).all() for s in series)


def draw_training_curves(tables: Mapping[str, pd.DataFrame]) -> Figure:
    """The figure of the module docstring for ``tables`` (network name -> history table)."""
    if not tables:
        raise SsimreconError("curves: no history files given")
    n_cols = max(len(SHARED), len(tables))
    fig = Figure(figsize=(4.4 * n_cols, 7.6), layout="constrained")
    axes = fig.subplots(2, n_cols, squeeze=False)
    colors = [f"C{k}" for k in range(10)]  # matplotlib's default colour cycle
    for i, (name, t) in enumerate(tables.items()):
        color = colors[i % len(colors)]
        best = _best_row(t)
        for ax, (col, _, _) in zip(axes[0], SHARED):
            ax.plot(t["epoch"], t[col], color=color, label=name)
            if best is not None:
                ax.plot([best["epoch"]], [best[col]], "o", color=color, markeredgecolor="black")
        own = axes[1, i]
        own.plot(t["epoch"], t["train_loss"], color=color, linestyle="--", label="training")
        own.plot(t["epoch"], t["val_loss"], color=color, label="validation")
        if best is not None:
            own.plot(
                [best["epoch"]],
                [best["val_loss"]],
                "o",
                color=color,
                markeredgecolor="black",
                label=f"best (epoch {int(best['epoch'])})",
            )
        if _positive(t["train_loss"], t["val_loss"]):
            own.set_yscale("log")
        terms = " + ".join(loss_terms_of(t)) or "composite"
        _style(own, f"{name}: its own loss", f"loss (weighted {terms})")
    if all(_positive(t["val_mse"]) for t in tables.values()):
        axes[0, 0].set_yscale("log")
    for ax, (_, title, ylabel) in zip(axes[0], SHARED):
        _style(ax, title, ylabel)
    for ax in [*axes[0, len(SHARED) :], *axes[1, len(tables) :]]:
        ax.set_visible(False)
    return fig


def plot_training_curves(
    histories: Mapping[str, Path | str], output_png: Path | str, dpi: int = 120
) -> Path:
    """Plot the curves of every network in ``histories`` (name -> history.csv) into
    ``output_png``."""
    if not histories:
        raise SsimreconError("curves: no history files given")
    fig = draw_training_curves({name: read_history(path) for name, path in histories.items()})
    out = Path(output_png)
    with atomic_output(out, suffix=out.suffix or ".png") as tmp:  # the suffix picks the format
        fig.savefig(tmp, dpi=dpi)
    return out
