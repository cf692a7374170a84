"""figures/study.png: SSIM and PSNR against the swept loss weight, one line per acceleration.

Rows: whole frame and head mask; columns: SSIM and PSNR (Table 1's paper convention, mean over the
test slices passing the filter, ``study.csv``'s ``<metric>_<region>`` columns). Each line is one
(swept network, acceleration): the mean over seeds with a 95% Student-t interval over seeds
(``mean +- t(0.975, n-1) * sd / sqrt(n)``; none with one seed). The network without a swept term
(e.g. Net-mse, the MSE-only network) is drawn as a dashed horizontal line per acceleration (its
mean over seeds) in the same colour. The x axis is logarithmic when every weight is positive.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from scipy import stats

from ssimrecon.atomic import atomic_output
from ssimrecon.errors import SsimreconError

PANELS = (("ssim", "SSIM"), ("psnr", "PSNR (dB)"))
REGIONS = (("frame", "whole frame"), ("head", "head mask"))


def seed_interval(values: pd.Series) -> tuple[float, float]:
    """(mean, half width of the 95% Student-t interval) over seeds; half width NaN for n < 2."""
    v = values.dropna().to_numpy(float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan
    if n < 2:
        return float(v.mean()), math.nan
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return float(v.mean()), half


def draw_study(study: pd.DataFrame) -> Figure:
    """The figure of ``study`` (the rows of study.csv): axes [region][metric] as ``REGIONS`` x
    ``PANELS``."""
    swept = study[study["swept"].fillna("") != ""]
    if swept.empty:
        raise SsimreconError("study.csv has no run with a swept loss weight: nothing to plot")
    reference = study[study["swept"].fillna("") == ""]
    accelerations = sorted(study["acceleration"].unique())
    spread = max(len(accelerations) - 1, 1)
    colours = {r: colormaps["viridis"](0.85 * i / spread) for i, r in enumerate(accelerations)}
    fig = Figure(figsize=(10, 7))
    axes = fig.subplots(len(REGIONS), len(PANELS), squeeze=False)
    positive = True
    for (network, term), rows in swept.groupby(["network", swept["swept"].str.split("+").str[0]]):
        weight = f"w_{term}"
        positive &= bool((rows[weight] > 0).all())
        for r, by_r in rows.groupby("acceleration"):
            for (i, (region, _)), (j, (metric, _)) in _grid():
                column = f"{metric}_{region}"
                summary = [(w, *seed_interval(g[column])) for w, g in by_r.groupby(weight)]
                x, mean, half = (np.array(v, float) for v in zip(*summary))
                ax = axes[i][j]
                label = f"{network}, R={r:g}"
                ax.plot(x, mean, "o-", color=colours[r], label=label)
                if np.isfinite(half).any():
                    ax.fill_between(x, mean - half, mean + half, color=colours[r], alpha=0.2)
                ax.set_xlabel(f"lambda ({term} weight)")
    for (network, r), rows in reference.groupby(["network", "acceleration"]):
        for (i, (region, _)), (j, (metric, _)) in _grid():
            mean, _ = seed_interval(rows[f"{metric}_{region}"])
            axes[i][j].axhline(
                mean, color=colours[r], linestyle="--", label=f"{network}, R={r:g} (reference)"
            )
    n_seeds = int(study.groupby("condition")["seed"].nunique().max())
    for (i, (_, region_title)), (j, (_, metric_title)) in _grid():
        ax = axes[i][j]
        ax.set_title(f"{metric_title}, {region_title}")
        if positive:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        f"Test metrics against the loss weight: mean over {n_seeds} seed(s), "
        "95% t-interval over seeds (shaded)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_study(study: pd.DataFrame, output: Path, dpi: int = 120) -> None:
    """Draw ``study`` (the rows of study.csv) into ``output`` (PNG, written atomically)."""
    fig = draw_study(study)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(output, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def _grid():
    """((row, region), (column, metric)) of every panel."""
    return [(a, b) for a in enumerate(REGIONS) for b in enumerate(PANELS)]
