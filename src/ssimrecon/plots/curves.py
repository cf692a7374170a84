"""training_curves.png: training/validation loss, validation SSIM and PSNR per epoch, one line per
network.

Reads the history.csv files written by :mod:`ssimrecon.training.loop` (columns epoch, train_loss,
val_loss,
val_ssim, val_psnr, ...).  The best epoch (lowest validation loss: the checkpoint that is kept) is
marked
with a dot in every panel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ssimrecon.atomic import atomic_output  # noqa: E402
from ssimrecon.errors import SsimreconError  # noqa: E402

REQUIRED = ("epoch", "train_loss", "val_loss", "val_ssim", "val_psnr")

__all__ = ["read_history", "plot_training_curves"]


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


def plot_training_curves(
    histories: Mapping[str, Path | str], output_png: Path | str, dpi: int = 120
) -> Path:
    """Plot the curves of every network in ``histories`` (name -> history.csv) into
    ``output_png``."""
    if not histories:
        raise SsimreconError("curves: no history files given")
    tables = {name: read_history(path) for name, path in histories.items()}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, t) in enumerate(tables.items()):
        color = colors[i % len(colors)]
        finite = t["val_loss"].map(lambda v: math.isfinite(float(v)))
        best = t.loc[t.loc[finite, "val_loss"].idxmin()] if finite.any() else None
        axes[0].plot(
            t["epoch"], t["train_loss"], color=color, linestyle="--", label=f"{name} train"
        )
        axes[0].plot(t["epoch"], t["val_loss"], color=color, label=f"{name} val")
        axes[1].plot(t["epoch"], t["val_ssim"], color=color, label=name)
        axes[2].plot(t["epoch"], t["val_psnr"], color=color, label=name)
        if best is not None:
            for ax, col in zip(axes, ("val_loss", "val_ssim", "val_psnr")):
                ax.plot(
                    [best["epoch"]],
                    [best[col]],
                    "o",
                    color=color,
                    markersize=7,
                    markeredgecolor="black",
                    label=f"{name} best (epoch {int(best['epoch'])})"
                    if col == "val_loss"
                    else None,
                )
    for ax, title, ylabel in zip(
        axes, ("Loss", "Validation SSIM", "Validation PSNR"), ("loss", "SSIM", "PSNR (dB)")
    ):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if all((t["train_loss"] > 0).all() and (t["val_loss"] > 0).all() for t in tables.values()):
        axes[0].set_yscale("log")
    out = Path(output_png)
    try:
        with atomic_output(
            out, suffix=out.suffix or ".png"
        ) as tmp:  # matplotlib picks the format from it
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return out
