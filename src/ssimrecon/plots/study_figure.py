"""figures/study.png: the test metrics against the swept loss weight, one line per acquisition
(acceleration, and with the study's physics axes forward model and data consistency), and each
condition's difference to the baseline network (e.g. Net-mse) with its interval.

Columns: SSIM, PSNR, HaarPSI, VIF, GMSD, MS-SSIM and HFEN (``PANELS``; Table 1's paper convention,
mean over the test slices passing the filter). Rows 1-2 (whole frame, head mask): ``study.csv``'s
``<metric>_<region>``; each line is one (swept network, acceleration): the mean over seeds with a
95% Student-t interval over seeds (``mean +- t(0.975, n-1) * sd / sqrt(n)``; none with one seed),
i.e. training noise; the network without a swept term (the baseline, e.g. Net-mse) is a dashed
horizontal line per acceleration (its mean over seeds) in the same colour. Rows 3-4 (whole frame,
head mask): ``diff_<metric>_<region>`` with its 95% hierarchical bootstrap interval over seeds and
subjects (``_low``/``_high``, error bars; :mod:`ssimrecon.evaluation.study_results`) against a
dashed zero line. The x axis is logarithmic when every weight is positive.
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

PANELS = (
    ("ssim", "SSIM ↑"),
    ("psnr", "PSNR (dB) ↑"),
    ("haarpsi", "HaarPSI ↑"),
    ("vif", "VIF ↑"),
    ("gmsd", "GMSD ↓"),
    ("ms_ssim", "MS-SSIM ↑"),
    ("hfen", "HFEN ↓"),
)
REGIONS = (("frame", "whole frame"), ("head", "head mask"))
#: study.csv columns that set a line apart (the acquisition a condition is compared within)
GROUPS = ("acceleration", "forward_model", "data_consistency")


def _groups(study: pd.DataFrame) -> list[str]:
    """The :data:`GROUPS` columns study.csv has (older tables: the acceleration alone)."""
    return [c for c in GROUPS if c in study.columns]


def group_label(key: tuple) -> str:
    """``R=10``, ``R=10, multicoil, DC``: a line's acquisition."""
    r, *rest = key
    text = f"R={float(r):g}"
    if rest:
        text += f", {rest[0]}"
    if len(rest) > 1 and str(rest[1]).lower() == "true":
        text += ", DC"
    return text


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


def _check_columns(study: pd.DataFrame) -> None:
    wanted = [
        f"{prefix}{metric}_{region}{suffix}"
        for metric, _ in PANELS
        for region, _ in REGIONS
        for prefix, suffix in (("", ""), ("diff_", ""), ("diff_", "_low"), ("diff_", "_high"))
    ]
    missing = [c for c in wanted if c not in study.columns]
    if missing:
        raise SsimreconError(
            f"study.csv lacks column {missing[0]!r} ({len(missing)} missing): rerun study-table"
        )


def draw_study(study: pd.DataFrame) -> Figure:
    """The figure of ``study`` (the rows of study.csv): axes [row][metric], rows the values in
    ``REGIONS`` then the differences in ``REGIONS``, columns ``PANELS``."""
    swept = study[study["swept"].fillna("") != ""]
    if swept.empty:
        raise SsimreconError("study.csv has no run with a swept loss weight: nothing to plot")
    _check_columns(study)
    reference = study[study["swept"].fillna("") == ""]
    groups = _groups(study)
    keys = sorted({tuple(k) for k in study[groups].itertuples(index=False)}, key=str)
    spread = max(len(keys) - 1, 1)
    colours = {k: colormaps["viridis"](0.85 * i / spread) for i, k in enumerate(keys)}
    fig = Figure(figsize=(3.1 * len(PANELS), 2.7 * 2 * len(REGIONS)))
    axes = fig.subplots(2 * len(REGIONS), len(PANELS), squeeze=False)
    positive = True
    for (network, term), rows in swept.groupby(["network", swept["swept"].str.split("+").str[0]]):
        weight = f"w_{term}"
        positive &= bool((rows[weight] > 0).all())
        for r, by_r in rows.groupby(groups):
            r = tuple(r) if isinstance(r, tuple) else (r,)
            label = f"{network}, {group_label(r)}"
            for (i, (region, _)), (j, (metric, _)) in _grid():
                column = f"{metric}_{region}"
                summary = [(w, *seed_interval(g[column])) for w, g in by_r.groupby(weight)]
                x, mean, half = (np.array(v, float) for v in zip(*summary))
                ax = axes[i][j]
                ax.plot(x, mean, "o-", color=colours[r], label=label)
                if np.isfinite(half).any():
                    ax.fill_between(x, mean - half, mean + half, color=colours[r], alpha=0.2)
                # the condition's difference (one value per condition: its first run's)
                first = by_r.groupby(weight)[[f"diff_{column}{s}" for s in ("", "_low", "_high")]]
                diff = first.first()
                d, low, high = (diff[c].to_numpy(float) for c in diff.columns)
                below = axes[len(REGIONS) + i][j]
                below.errorbar(
                    diff.index.to_numpy(float),
                    d,
                    yerr=np.vstack([d - low, high - d]),
                    fmt="o-",
                    color=colours[r],
                    capsize=3,
                    label=label,
                )
                for a in (ax, below):
                    a.set_xlabel(f"lambda ({term} weight)")
    for (network, *r), rows in reference.groupby(["network", *groups]):
        r = tuple(r)
        for (i, (region, _)), (j, (metric, _)) in _grid():
            mean, _ = seed_interval(rows[f"{metric}_{region}"])
            axes[i][j].axhline(
                mean,
                color=colours[r],
                linestyle="--",
                label=f"{network}, {group_label(r)} (reference)",
            )
    baseline = ", ".join(dict.fromkeys(reference["network"])) or "the baseline"
    n_seeds = int(study.groupby("condition")["seed"].nunique().max())
    for (i, (_, region_title)), (j, (_, metric_title)) in _grid():
        for row, title in (
            (i, f"{metric_title}, {region_title}"),
            (len(REGIONS) + i, f"{metric_title} - {baseline}, {region_title}"),
        ):
            ax = axes[row][j]
            ax.set_title(title, fontsize=9)
            if not _has_finite_data(ax):  # e.g. VIF on images below its 41 pixels
                ax.text(0.5, 0.5, "not scored (NaN)", ha="center", transform=ax.transAxes)
            elif positive:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
        axes[len(REGIONS) + i][j].axhline(0.0, color="0.3", linestyle="--", linewidth=0.8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        f"Test metrics against the loss weight: mean over {n_seeds} seed(s), 95% t-interval over "
        f"seeds (shaded); bottom rows: difference to {baseline} at the same acquisition, 95% "
        "hierarchical bootstrap interval over seeds and subjects (bars)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _has_finite_data(ax) -> bool:
    """Whether any line of ``ax`` other than a horizontal reference has a finite point."""
    return any(
        np.isfinite(np.asarray(line.get_ydata(), float)).any() and line.get_linestyle() != "--"
        for line in ax.get_lines()
    )


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
