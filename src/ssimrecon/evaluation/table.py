"""Table 1: every registry metric per method, region and slice set, with the statistics plan.

Inputs per method: the per-slice CSV and the per-volume CSV of ``ssimrecon evaluate`` (columns in
:mod:`ssimrecon.evaluation.evaluate`).  Every method must cover the same (subject, slice, region)
rows with the same slice filter, and the same volumes.

Output: a tidy frame, one row per method x convention x region x slice set x metric (``COLUMNS``):

- ``convention`` ``paper``: per-slice metrics of :data:`ssimrecon.functional.registry.REGISTRY`
  (SSIM, PSNR, relative error, MSE, HaarPSI, VIF, GMSD, MS-SSIM, HFEN), ``region`` ``frame`` or
  ``head``, ``slices`` ``filtered`` (``passes_filter``) or ``all``; ``mean``/``sd``: over the
  slices (sd with ddof=1); ``subject_mean``/``subject_sd``: over per-subject means (each subject
  weighs once).  Slices where a metric is NaN (an unscored region, an image below the metric's
  smallest side) are left out; ``n_slices`` counts the slices used; a metric scored on no slice
  has NaN statistics and says so in ``note``.
- ``convention`` ``fastmri``: per-volume metrics (region ``frame``, slices ``all``); mean and sd
  over volumes (one per subject, so ``subject_mean`` equals ``mean``); ``n_slices`` sums the
  volumes' slices.

The statistics plan (:mod:`ssimrecon.evaluation.statistics`; ``evaluation.primary`` and
``evaluation.bootstrap`` in the config), per method against ``baseline``, over subjects
(per-subject means, never slices):

- ``role``: ``baseline``; ``reference`` for the zero-filled input (differences given, never
  tested: ``p_holm`` NaN); ``confirmatory`` for the primary endpoint (paper convention, the
  primary metric, region and slice set) of every other method; ``exploratory`` otherwise.
- ``p_vs_baseline``: two-sided paired Wilcoxon signed-rank test; NaN for the baseline itself, and
  NaN with an explanation in ``note`` when fewer than 2 subjects or all differences are 0.
- ``p_holm``: Holm-adjusted p; the confirmatory family is the primary endpoint of every tested
  method, the exploratory family of a method all its other endpoints.
- ``difference``, ``diff_low``, ``diff_high``: mean paired difference (method - baseline) of
  per-subject means and its 95% percentile bootstrap interval over subjects (``resamples``
  resamples, generator seed ``seed``); ``effect_size``: Cohen's d_z (mean / sd of the paired
  differences).

The Markdown and HTML renderings (:mod:`ssimrecon.evaluation.table_render`) put a compact table
first (the primary endpoint, every metric in the primary region and slice set with the best value
marked, the differences with intervals and their p), then the detailed tables, and state the
rules the numbers follow beside them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ssimrecon.config.runs import is_zero_filled
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.evaluate import REGIONS, SLICE_COLUMNS, VOLUME_COLUMNS
from ssimrecon.evaluation.statistics import (
    bootstrap_interval,
    effect_size,
    holm,
    paired_wilcoxon,
)
from ssimrecon.functional.metrics import FASTMRI_METRICS
from ssimrecon.functional.registry import REGISTRY

log = logging.getLogger(__name__)

COLUMNS = (
    "split",
    "method",
    "convention",
    "region",
    "slices",
    "metric",
    "mean",
    "sd",
    "subject_mean",
    "subject_sd",
    "role",
    "difference",
    "diff_low",
    "diff_high",
    "effect_size",
    "p_vs_baseline",
    "p_holm",
    "baseline",
    "n_subjects",
    "n_slices",
    "note",
)
SLICE_SETS = ("filtered", "all")
SLICE_KEYS = ("subject", "slice", "region")
UNSCORED_NOTE = (
    "not scored on any slice (NaN on every slice: the image or region is below the metric's "
    "smallest side, or empty)"
)


@dataclasses.dataclass(frozen=True)
class Primary:
    """The primary endpoint (``evaluation.primary``): a registry metric in the paper convention,
    a region (``frame``/``head``) and a slice set (``filtered``/``all``)."""

    metric: str
    region: str
    slices: str

    def __post_init__(self) -> None:
        for key, value, known in (
            ("metric", self.metric, tuple(REGISTRY)),
            ("region", self.region, REGIONS),
            ("slices", self.slices, SLICE_SETS),
        ):
            if value not in known:
                raise SsimreconError(
                    f"evaluation.primary.{key}: {value!r} is not one of {', '.join(known)}"
                )

    @classmethod
    def from_config(cls, values: dict[str, str]) -> Primary:
        """From ``evaluation.primary`` as the config holds it; a missing or unknown key is an
        error naming it."""
        fields = ("metric", "region", "slices")
        for key in fields:
            if key not in values:
                raise SsimreconError(f"evaluation.primary.{key}: missing")
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise SsimreconError(f"evaluation.primary.{unknown[0]}: unknown key")
        return cls(**values)

    def key(self) -> tuple[str, str, str, str]:
        """(convention, region, slices, metric) of the endpoint's rows."""
        return ("paper", self.region, self.slices, self.metric)


@dataclasses.dataclass(frozen=True)
class TableRules:
    """What the table was computed under: the split's name, the baseline network, the slice filter
    threshold (``evaluation.min_signal_fraction``), the intensity scale's percentile
    (``preprocessing.scale_percentile``), the number of seeds each network's metrics were
    averaged over (1 without a study; see :mod:`ssimrecon.evaluation.study_results`), the primary
    endpoint (``evaluation.primary``) and the bootstrap's resamples and seed
    (``evaluation.bootstrap``); and the acquisition, stated in the header: the forward model
    (``preprocessing.forward_model``), the mask's nominal acceleration and its effective one
    (:func:`ssimrecon.kspace.forward.effective_acceleration_of`; NaN: not stated)."""

    split: str
    baseline: str
    min_signal_fraction: float
    scale_percentile: float
    seeds: int
    primary: Primary
    resamples: int
    bootstrap_seed: int
    forward_model: str = "magnitude"
    acceleration: float = math.nan
    effective_acceleration: float = math.nan


def _check_slices(name: str, df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    missing = [c for c in SLICE_COLUMNS if c not in df.columns]
    if missing:
        raise SsimreconError(f"metrics of method {name!r} lack columns {missing}")
    if df.empty:
        raise SsimreconError(f"metrics of method {name!r} have no slices")
    df = df.assign(
        subject=df["subject"].astype(str),
        slice=df["slice"].astype(int),
        passes_filter=df["passes_filter"].astype(bool),
    )
    if df.duplicated(list(SLICE_KEYS)).any():
        raise SsimreconError(f"metrics of method {name!r} list a (subject, slice, region) twice")
    unknown = sorted(set(df["region"]) - set(REGIONS))
    if unknown:
        raise SsimreconError(f"metrics of method {name!r} have unknown regions {unknown}")
    if not df["passes_filter"].equals(df["slice_signal"] >= threshold):
        raise SsimreconError(
            f"metrics of method {name!r} were filtered with another threshold than "
            f"evaluation.min_signal_fraction = {threshold}; rerun its evaluation"
        )
    return df


def _check_volumes(name: str, df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in VOLUME_COLUMNS if c not in df.columns]
    if missing:
        raise SsimreconError(f"volume metrics of method {name!r} lack columns {missing}")
    df = df.assign(subject=df["subject"].astype(str))
    if df.empty or df["subject"].duplicated().any():
        raise SsimreconError(f"volume metrics of method {name!r} need one row per subject")
    return df


def _same_rows(name: str, keys: set, baseline: str, reference: set, what: str) -> None:
    if keys != reference:
        raise SsimreconError(
            f"methods {name!r} and {baseline!r} cover different {what} ({len(keys - reference)} "
            f"only in {name!r}, {len(reference - keys)} only in {baseline!r})"
        )


def _stat_row(
    values: pd.DataFrame, metric: str, base: pd.Series | None, rules: TableRules
) -> tuple[dict[str, object], pd.Series]:
    """Statistics of one metric over ``values`` (columns subject, metric; NaN rows dropped) and,
    against the baseline's per-subject means ``base``, the paired comparison."""
    used = values[["subject", metric]].dropna()
    per_subject = used.groupby("subject")[metric].mean()
    row: dict[str, object] = {
        "mean": float(used[metric].mean()),
        "sd": float(used[metric].std(ddof=1)),
        "subject_mean": float(per_subject.mean()),
        "subject_sd": float(per_subject.std(ddof=1)),
        "difference": math.nan,
        "diff_low": math.nan,
        "diff_high": math.nan,
        "effect_size": math.nan,
        "p_vs_baseline": math.nan,
        "n_subjects": int(per_subject.size),
        "note": "",
    }
    if base is not None:
        row["p_vs_baseline"], row["note"] = paired_wilcoxon(per_subject, base)
        mine, theirs = per_subject.align(base, join="inner")
        diff = mine.to_numpy(float) - theirs.to_numpy(float)
        row["difference"], row["diff_low"], row["diff_high"] = bootstrap_interval(
            diff, rules.resamples, rules.bootstrap_seed
        )
        row["effect_size"] = effect_size(diff)
    if used.empty:
        row["note"] = f"{metric}: {UNSCORED_NOTE}"
    return row, per_subject


def _roles_and_holm(table: pd.DataFrame, rules: TableRules) -> pd.DataFrame:
    """Add ``role`` and ``p_holm`` (see the module docstring) to the tidy rows."""
    key = pd.Series(
        list(zip(table["convention"], table["region"], table["slices"], table["metric"])),
        index=table.index,
    )
    primary = key == rules.primary.key()
    baseline = table["method"] == rules.baseline
    reference = table["method"].map(is_zero_filled) & ~baseline
    role = np.where(primary, "confirmatory", "exploratory").astype(object)
    role[reference.to_numpy()] = "reference"
    role[baseline.to_numpy()] = "baseline"
    table = table.assign(role=role, p_holm=math.nan)
    tested = table["role"].isin(["confirmatory", "exploratory"])
    confirmatory = table.index[tested & primary]
    table.loc[confirmatory, "p_holm"] = holm(table.loc[confirmatory, "p_vs_baseline"])
    for method in table.loc[tested & ~primary, "method"].unique():
        family = table.index[tested & ~primary & (table["method"] == method)]
        table.loc[family, "p_holm"] = holm(table.loc[family, "p_vs_baseline"])
    return table


def build_table1(
    slices: dict[str, pd.DataFrame], volumes: dict[str, pd.DataFrame], rules: TableRules
) -> pd.DataFrame:
    """The tidy table (``COLUMNS``) of the methods in the order given; see the module docstring."""
    baseline = rules.baseline
    if baseline not in slices:
        raise SsimreconError(f"baseline {baseline!r} is not among the methods {list(slices)}")
    if set(volumes) != set(slices):
        raise SsimreconError(
            f"per-slice methods {list(slices)} and per-volume methods {list(volumes)} differ"
        )
    frames = {n: _check_slices(n, df, rules.min_signal_fraction) for n, df in slices.items()}
    vols = {n: _check_volumes(n, df) for n, df in volumes.items()}
    keyed = {
        n: set(zip(df["subject"], df["slice"], df["region"], df["passes_filter"]))
        for n, df in frames.items()
    }
    for name in frames:
        _same_rows(name, keyed[name], baseline, keyed[baseline], "(subject, slice) rows")
        _same_rows(
            name, set(vols[name]["subject"]), baseline, set(vols[baseline]["subject"]), "volumes"
        )
    order = [baseline] + [n for n in frames if n != baseline]  # baseline first: its subject means
    base_means: dict[tuple, pd.Series] = {}
    rows: list[dict[str, object]] = []
    for name in order:
        df = frames[name]
        for region in REGIONS:
            in_region = df[df["region"] == region]
            for which in SLICE_SETS:
                chosen = in_region[in_region["passes_filter"]] if which == "filtered" else in_region
                for metric in REGISTRY:
                    key = ("paper", region, which, metric)
                    row, means = _stat_row(chosen, metric, base_means.get(key), rules)
                    base_means.setdefault(key, means)
                    row["n_slices"] = int(chosen[metric].notna().sum())
                    rows.append(
                        {
                            "method": name,
                            "convention": "paper",
                            "region": region,
                            "slices": which,
                            "metric": metric,
                            **row,
                        }
                    )
        for metric in FASTMRI_METRICS:
            key = ("fastmri", "frame", "all", metric)
            row, means = _stat_row(vols[name], metric, base_means.get(key), rules)
            base_means.setdefault(key, means)
            row["n_slices"] = int(vols[name]["slices"].sum())
            rows.append(
                {
                    "method": name,
                    "convention": "fastmri",
                    "region": "frame",
                    "slices": "all",
                    "metric": metric,
                    **row,
                }
            )
    table = pd.DataFrame(rows).assign(split=rules.split, baseline=baseline)
    table = _roles_and_holm(table, rules)
    rank = {n: i for i, n in enumerate(frames)}
    table = table.sort_values("method", key=lambda m: m.map(rank), kind="stable")
    for note in sorted(set(table["note"]) - {""}):
        log.warning("vs %s: %s", baseline, note)
    return table.reset_index(drop=True)[list(COLUMNS)]


def _read_csv(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SsimreconError(f"{what} file not found: {path}")
    try:
        df = pd.read_csv(path, dtype={"subject": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SsimreconError(f"cannot read {what} file {path}: {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SsimreconError(f"{what} file {path} lacks columns {missing}")
    return df


def read_metrics_csv(path: Path) -> pd.DataFrame:
    """Read one per-slice metrics CSV, naming the file in errors."""
    return _read_csv(path, SLICE_COLUMNS, "metrics")


def read_volumes_csv(path: Path) -> pd.DataFrame:
    """Read one per-volume (fastMRI) metrics CSV, naming the file in errors."""
    return _read_csv(path, VOLUME_COLUMNS, "volume metrics")
