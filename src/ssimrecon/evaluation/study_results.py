"""A study's results: ``study.csv`` (one row per run) and seed-averaged metrics for Table 1.

``study.csv`` columns (``STUDY_COLUMNS``): run, condition (the run without its seed), network,
acceleration (the mask's nominal R), forward_model, data_consistency, effective_acceleration (the
R the run's data get: Hermitian mirrors counted for magnitude data, the nominal R for complex and
multicoil data; :func:`ssimrecon.kspace.forward.effective_acceleration_of`), seed, swept (the
loss terms the study varied for the run, ``+``-joined), ``w_<term>`` (the run's loss weight of
each term, 0 where it has none), then the test metrics as Table 1
defines them (:mod:`ssimrecon.evaluation.table`, paper convention, slices passing the filter):
``<metric>_<region>`` the mean over slices and ``<metric>_<region>_subjects`` the mean over
per-subject means, for every ``metric`` of :data:`ssimrecon.functional.registry.REGISTRY` (ssim,
psnr, rel_error, mse, haarpsi, vif, gmsd, ms_ssim, hfen) and ``region`` in frame, head;
``fastmri_ssim``, ``fastmri_psnr`` and ``fastmri_nmse`` (mean over volumes); ``n_subjects`` and
``n_slices`` (filtered slices in the whole frame); then the difference of the run's condition to
the baseline network's condition at the same acceleration, forward model and data consistency
(``evaluation.baseline``, e.g. Net-mse: the dssim-minus-mse effect per acquisition),
``diff_<metric>_<region>`` with its 95% interval ``diff_<metric>_<region>_low``/``_high``: per
run and subject the mean over filtered slices, the difference of the means over seeds then
subjects, and a hierarchical percentile bootstrap (subjects shared, each condition's seeds drawn
independently, ``evaluation.bootstrap``;
:func:`ssimrecon.evaluation.statistics.hierarchical_interval`); the same for every run of a
condition, NaN for the baseline's own condition.

Seed averaging (:func:`seed_average`): the per-slice (and per-volume) metrics of the runs of one
condition are averaged over the seeds, slice by slice; Table 1 of a study is computed from those,
so its means are means over seeds and its paired Wilcoxon test compares per-subject means of
seed-averaged slices (subjects remain the independent units).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.evaluate import REGIONS, SLICE_COLUMNS, VOLUME_COLUMNS
from ssimrecon.evaluation.statistics import hierarchical_interval
from ssimrecon.evaluation.table import Primary, TableRules, build_table1
from ssimrecon.functional.losses import TERMS
from ssimrecon.functional.metrics import FASTMRI_METRICS
from ssimrecon.functional.registry import REGISTRY

#: loss terms in study.csv's weight columns, in a fixed order
WEIGHT_TERMS = tuple(sorted(TERMS))
METRIC_COLUMNS = tuple(
    f"{metric}_{region}{suffix}"
    for region in REGIONS
    for metric in REGISTRY
    for suffix in ("", "_subjects")
) + tuple(f"fastmri_{metric}" for metric in FASTMRI_METRICS if metric != "mse")
DIFFERENCE_COLUMNS = tuple(
    f"diff_{metric}_{region}{suffix}"
    for region in REGIONS
    for metric in REGISTRY
    for suffix in ("", "_low", "_high")
)
STUDY_COLUMNS = (
    "run",
    "condition",
    "network",
    "acceleration",
    "forward_model",
    "data_consistency",
    "effective_acceleration",
    "seed",
    "swept",
    *(f"w_{term}" for term in WEIGHT_TERMS),
    *METRIC_COLUMNS,
    "n_subjects",
    "n_slices",
    *DIFFERENCE_COLUMNS,
)
#: keys of one slice row and of one volume row
_SLICE_KEYS = ("subject", "slice", "region")


def run_metrics(
    slices: pd.DataFrame, volumes: pd.DataFrame, min_signal_fraction: float, primary: Primary
) -> dict[str, float]:
    """The metric columns of one run's study.csv row, computed by Table 1's own code (one
    method: no comparison, so no bootstrap)."""
    rules = TableRules("test", "run", min_signal_fraction, math.nan, 1, primary, 0, 0)
    table = build_table1({"run": slices}, {"run": volumes}, rules).set_index(
        ["convention", "region", "slices", "metric"]
    )
    out: dict[str, float] = {}
    for region in REGIONS:
        for metric in REGISTRY:
            row = table.loc[("paper", region, "filtered", metric)]
            out[f"{metric}_{region}"] = float(row["mean"])
            out[f"{metric}_{region}_subjects"] = float(row["subject_mean"])
    for metric in FASTMRI_METRICS:
        if metric != "mse":
            out[f"fastmri_{metric}"] = float(table.loc[("fastmri", "frame", "all", metric)]["mean"])
    frame = table.loc[("paper", "frame", "filtered", "ssim")]
    out["n_subjects"], out["n_slices"] = int(frame["n_subjects"]), int(frame["n_slices"])
    return out


def subject_means(slices: pd.DataFrame, region: str, metric: str) -> pd.Series:
    """Per-subject mean of ``metric`` over the filtered slices of ``region`` (NaN slices left
    out; a subject without a scored slice is NaN)."""
    chosen = slices[slices["passes_filter"].astype(bool) & (slices["region"] == region)]
    subjects = chosen["subject"].astype(str)
    return chosen[metric].groupby(subjects).mean()


def acquisition(run: Mapping[str, Any]) -> tuple[float, str, bool]:
    """(acceleration, forward_model, data_consistency) of a run: the data and network physics a
    condition is compared within (runs from before the forward models: magnitude, no DC)."""
    return (
        float(run["acceleration"]),
        str(run.get("forward_model", "magnitude")),
        bool(run.get("data_consistency", False)),
    )


def condition_differences(
    runs: Mapping[str, Mapping[str, Any]],
    slices: Mapping[str, pd.DataFrame],
    baseline: str,
    resamples: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Condition -> the ``DIFFERENCE_COLUMNS`` against the condition of network ``baseline`` at
    the same acquisition (:func:`acquisition`: acceleration, forward model, data consistency;
    NaN for that condition itself and where there is none)."""
    conditions: dict[str, list[str]] = {}
    for name, run in runs.items():
        conditions.setdefault(run["condition"], []).append(name)
    reference = {
        acquisition(runs[names[0]]): c
        for c, names in conditions.items()
        if runs[names[0]]["network"] == baseline
    }
    out: dict[str, dict[str, float]] = {}
    for condition, names in conditions.items():
        ref = reference.get(acquisition(runs[names[0]]))
        row = dict.fromkeys(DIFFERENCE_COLUMNS, math.nan)
        if ref is not None and ref != condition:
            for region in REGIONS:
                for metric in REGISTRY:
                    mine = pd.concat(
                        [subject_means(slices[n], region, metric) for n in names], axis=1
                    )
                    theirs = pd.concat(
                        [subject_means(slices[n], region, metric) for n in conditions[ref]], axis=1
                    )
                    mine, theirs = mine.align(theirs, join="inner", axis=0)
                    mean, low, high = hierarchical_interval(
                        mine.to_numpy(float).T, theirs.to_numpy(float).T, resamples, seed
                    )
                    key = f"diff_{metric}_{region}"
                    row[key], row[f"{key}_low"], row[f"{key}_high"] = mean, low, high
        out[condition] = row
    return out


def study_table(
    runs: Mapping[str, Mapping[str, Any]],
    slices: Mapping[str, pd.DataFrame],
    volumes: Mapping[str, pd.DataFrame],
    min_signal_fraction: float,
    *,
    baseline: str,
    primary: Primary,
    resamples: int,
    seed: int,
    effective: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """study.csv (``STUDY_COLUMNS``), one row per run in the order of ``runs``.

    ``effective``: run name -> the effective acceleration of its data (NaN where not given).

    ``runs``: run name -> {condition, network, loss, acceleration, seed, swept} (as
    :class:`ssimrecon.config.runs.Run`); ``slices``/``volumes``: run name -> its test metrics;
    ``baseline``: the network each condition is compared with; ``resamples``/``seed``: the
    hierarchical bootstrap's.
    """
    missing = [name for name in runs if name not in slices or name not in volumes]
    if missing:
        raise SsimreconError(f"study: no test metrics for run(s) {', '.join(missing)}")
    differences = condition_differences(runs, slices, baseline, resamples, seed)
    rows = []
    for name, run in runs.items():
        rows.append(
            {
                "run": name,
                "condition": run["condition"],
                "network": run["network"],
                "acceleration": float(run["acceleration"]),
                "forward_model": acquisition(run)[1],
                "data_consistency": acquisition(run)[2],
                "effective_acceleration": float((effective or {}).get(name, math.nan)),
                "seed": int(run["seed"]),
                "swept": "+".join(run["swept"]),
                **{f"w_{t}": float(run["loss"].get(t, 0.0)) for t in WEIGHT_TERMS},
                **run_metrics(slices[name], volumes[name], min_signal_fraction, primary),
                **differences[run["condition"]],
            }
        )
    return pd.DataFrame(rows)[list(STUDY_COLUMNS)]


def _average(frames: Sequence[pd.DataFrame], keys: Sequence[str], values: Sequence[str], what: str):
    """Rows of ``frames`` (one per seed) averaged over the frames in ``values``; every other
    column must agree between the frames (same slices, same filter)."""
    if not frames:
        raise SsimreconError(f"seed average: no {what} given")
    indexed = [f.assign(subject=f["subject"].astype(str)).set_index(list(keys)) for f in frames]
    first = indexed[0].sort_index()
    fixed = [c for c in first.columns if c not in values]
    for i, other in enumerate(indexed[1:], start=2):
        other = other.sort_index()
        if not other.index.equals(first.index) or not other[fixed].equals(first[fixed]):
            raise SsimreconError(
                f"seed average: {what} {i} covers other rows than {what} 1 (same subjects, "
                "slices and filter needed)"
            )
    mean = sum(f.sort_index()[list(values)] for f in indexed) / len(indexed)
    return pd.concat([first[fixed], mean], axis=1).reset_index()


def seed_average(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-slice metrics (``SLICE_COLUMNS``) of the seeds of one condition, averaged slice by
    slice (NaN where any seed is NaN: an unscored region is unscored for every seed)."""
    out = _average(frames, _SLICE_KEYS, tuple(REGISTRY), "per-slice metrics")
    return out[list(SLICE_COLUMNS)]


def seed_average_volumes(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-volume metrics (``VOLUME_COLUMNS``) of the seeds of one condition, averaged per
    subject."""
    out = _average(frames, ("subject",), FASTMRI_METRICS, "per-volume metrics")
    return out[list(VOLUME_COLUMNS)]
