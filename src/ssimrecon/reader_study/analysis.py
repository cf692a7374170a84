"""The statistics of a reader study's answers, as one tidy table (:data:`RESULT_COLUMNS`).

Readings are the rows of :func:`ssimrecon.reader_study.answers.read_answers`. Each comparison
pairs a method with every method listed before it in ``reader_study.methods`` (the baseline
first). First readings only, except for the intra-reader consistency, which compares each repeat
with its first reading. Rules (also written into the Markdown, :func:`markdown`):

- **preference** (``choice`` task): per reader, the share of trials in which ``method`` was chosen
  over ``versus`` (trials whose choice was one of the two), with the exact Clopper-Pearson 95%
  interval and the exact two-sided binomial test against 0.5. Pooled over readers, subjects are the
  clusters (every reader reads the same slices, several slices per subject): the interval is a
  cluster bootstrap over subjects (percentile, :data:`RESAMPLES` resamples) and the test the exact
  sign test over subjects (each subject's majority preference over all its readings; subjects
  without one are dropped).
- **likert**: mean and sd of each method's scores per criterion; interval: cluster bootstrap over
  subjects.
- **likert_paired**: mean paired difference ``method - versus`` of the scores one reader gave in
  one trial; per reader the Wilcoxon signed-rank test over trials, pooled the Wilcoxon signed-rank
  test over subjects of each subject's mean difference (zero differences: Pratt); interval:
  cluster bootstrap over subjects.
- **agreement** between readers (two or more): Cohen's kappa (two readers) or Fleiss' kappa (more)
  of the chosen method over the trials every reader answered, and per criterion of the scores
  (two readers: quadratic-weighted Cohen's kappa; more: Fleiss' kappa over the five scores).
- **consistency** within a reader: the share of repeats in which the same method was chosen as
  at the first reading (Clopper-Pearson interval), and per criterion the share of identical
  scores (``estimate``) with the mean absolute score difference in ``note``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ssimrecon.reader_study.design import CRITERION_KEYS, LIKERT_MAX, LIKERT_MIN
from ssimrecon.reader_study.statistics import (
    Interval,
    clopper_pearson,
    cluster_bootstrap_rate,
    cohen_kappa,
    fleiss_kappa,
    signed_rank,
)

#: bootstrap resamples of the subject-clustered intervals
RESAMPLES = 10000
POOLED = "pooled"
CLOPPER_PEARSON = "Clopper-Pearson exact 95%"
BOOTSTRAP = f"cluster bootstrap over subjects, percentile 95%, {RESAMPLES} resamples"
RESULT_COLUMNS = (
    "analysis",
    "reader",
    "criterion",
    "method",
    "versus",
    "measure",
    "estimate",
    "sd",
    "ci_low",
    "ci_high",
    "interval",
    "p_value",
    "test",
    "n",
    "n_subjects",
    "note",
)


def _row(analysis: str, reader: str, measure: str, value: Interval, **fields) -> dict:
    return {
        "analysis": analysis,
        "reader": reader,
        "criterion": "",
        "method": "",
        "versus": "",
        "measure": measure,
        "estimate": value.estimate,
        "sd": float("nan"),
        "ci_low": value.low,
        "ci_high": value.high,
        "interval": "",
        "p_value": value.p_value,
        "test": "",
        "note": "",
        **fields,
    }


def pairs(methods: Sequence[str]) -> list[tuple[str, str]]:
    """(method, versus) for every method and each method listed before it."""
    return [(methods[j], methods[i]) for i, j in itertools.combinations(range(len(methods)), 2)]


def choices(readings: pd.DataFrame) -> pd.DataFrame:
    """One row per reader and answered trial: reader, trial, subject, repeat_of, the method
    chosen."""
    picked = readings[readings["chosen"] == 1]
    return picked[["reader", "trial", "subject", "repeat_of", "method"]].rename(
        columns={"method": "chosen_method"}
    )


def _readers(readings: pd.DataFrame) -> list[str]:
    return sorted(set(readings["reader"]))


def preference_rows(readings: pd.DataFrame, methods: Sequence[str], seed: int) -> list[dict]:
    """Rows of the ``preference`` analysis (module docstring)."""
    picked = choices(readings)
    picked = picked[picked["repeat_of"] == ""]
    rows: list[dict] = []
    if picked.empty:
        return rows
    for method, versus in pairs(methods):
        among = picked[picked["chosen_method"].isin([method, versus])]
        wins = among.assign(win=(among["chosen_method"] == method).astype(int))
        common = {"method": method, "versus": versus, "measure": "preference rate"}
        for reader in _readers(readings):
            mine = wins[wins["reader"] == reader]
            rows.append(
                _row(
                    "preference",
                    reader,
                    value=clopper_pearson(int(mine["win"].sum()), len(mine)),
                    interval=CLOPPER_PEARSON,
                    test="exact binomial vs 0.5",
                    n=len(mine),
                    n_subjects=mine["subject"].nunique(),
                    **common,
                )
            )
        by_subject = wins.groupby("subject")["win"].agg(["sum", "count"])
        pooled = cluster_bootstrap_rate(
            by_subject["sum"], by_subject["count"], resamples=RESAMPLES, seed=seed
        )
        share = by_subject["sum"] / by_subject["count"]
        ahead, behind = int((share > 0.5).sum()), int((share < 0.5).sum())
        sign = clopper_pearson(ahead, ahead + behind)
        rows.append(
            _row(
                "preference",
                POOLED,
                value=Interval(pooled.estimate, pooled.low, pooled.high, sign.p_value),
                interval=BOOTSTRAP,
                test="exact sign test over subjects",
                n=len(wins),
                n_subjects=len(by_subject),
                note=f"{ahead} subjects prefer {method}, {behind} {versus}, "
                f"{len(by_subject) - ahead - behind} tied",
                **common,
            )
        )
    return rows


def _clustered_mean(values: pd.DataFrame, column: str, seed: int) -> Interval:
    """Mean of ``column`` with a cluster bootstrap interval over ``subject``."""
    by_subject = values.groupby("subject")[column].agg(["sum", "count"])
    return cluster_bootstrap_rate(
        by_subject["sum"], by_subject["count"], resamples=RESAMPLES, seed=seed
    )


def likert_rows(readings: pd.DataFrame, methods: Sequence[str], seed: int) -> list[dict]:
    """Rows of the ``likert`` and ``likert_paired`` analyses (module docstring)."""
    first = readings[readings["repeat_of"] == ""]
    rows = []
    groups = [(r, first[first["reader"] == r]) for r in _readers(readings)] + [(POOLED, first)]
    for criterion in CRITERION_KEYS:
        scored = {reader: part.dropna(subset=[criterion]) for reader, part in groups}
        if all(part.empty for part in scored.values()):
            continue
        for reader, part in scored.items():
            for method in methods:
                mine = part[part["method"] == method]
                rows.append(
                    _row(
                        "likert",
                        reader,
                        "mean score",
                        _clustered_mean(mine, criterion, seed),
                        criterion=criterion,
                        method=method,
                        sd=float(mine[criterion].std()) if len(mine) > 1 else float("nan"),
                        interval=BOOTSTRAP,
                        n=len(mine),
                        n_subjects=mine["subject"].nunique(),
                        note=f"median {mine[criterion].median():g}" if len(mine) else "",
                    )
                )
            wide = part.pivot_table(
                index=["reader", "trial", "subject"], columns="method", values=criterion
            ).reset_index()
            for method, versus in pairs(methods):
                if method not in wide or versus not in wide:
                    continue
                both = wide.dropna(subset=[method, versus])
                diff = both.assign(d=both[method] - both[versus])
                if reader == POOLED:
                    per_subject = diff.groupby("subject")["d"].mean()
                    p_value, note = signed_rank(per_subject)
                    test = "Wilcoxon signed-rank over subject means (Pratt)"
                else:
                    p_value, note = signed_rank(diff["d"])
                    test = "Wilcoxon signed-rank over trials (Pratt)"
                mean = _clustered_mean(diff, "d", seed)
                rows.append(
                    _row(
                        "likert_paired",
                        reader,
                        "mean difference",
                        Interval(mean.estimate, mean.low, mean.high, p_value),
                        criterion=criterion,
                        method=method,
                        versus=versus,
                        sd=float(diff["d"].std()) if len(diff) > 1 else float("nan"),
                        interval=BOOTSTRAP,
                        test=test,
                        n=len(diff),
                        n_subjects=diff["subject"].nunique(),
                        note=note,
                    )
                )
    return rows


def _kappa(table: pd.DataFrame, categories: Sequence, ordinal: bool) -> tuple[float, str]:
    """Kappa of an (items, readers) table: Cohen's for two readers (quadratic weights if
    ``ordinal``), Fleiss' for more; returns (kappa, measure)."""
    if table.shape[1] == 2:
        a, b = (table[c].tolist() for c in table.columns)
        if ordinal:
            return cohen_kappa(a, b, weights="quadratic"), "quadratic-weighted Cohen's kappa"
        return cohen_kappa(a, b), "Cohen's kappa"
    counts = np.stack([(table == c).sum(axis=1).to_numpy() for c in categories], axis=1)
    return fleiss_kappa(counts), "Fleiss' kappa"


def _agreement_row(
    label: str,
    criterion: str,
    table: pd.DataFrame,
    categories: Sequence,
    first: pd.DataFrame,
    note: str,
) -> dict:
    """One ``agreement`` row: the kappa of an (items, readers) table indexed by trial (first)."""
    kappa, measure = _kappa(table, categories, ordinal=criterion != "choice")
    trials = table.index.get_level_values("trial")
    return _row(
        "agreement",
        label,
        measure,
        Interval(kappa, float("nan"), float("nan")),
        criterion=criterion,
        n=len(table),
        n_subjects=first[first["trial"].isin(trials)]["subject"].nunique(),
        note=note,
    )


def agreement_rows(readings: pd.DataFrame, methods: Sequence[str]) -> list[dict]:
    """Rows of the ``agreement`` analysis (module docstring); none with a single reader."""
    readers = _readers(readings)
    if len(readers) < 2:
        return []
    label = " & ".join(readers) if len(readers) == 2 else f"all {len(readers)} readers"
    first = readings[readings["repeat_of"] == ""]
    rows = []
    picked = choices(first).pivot(index="trial", columns="reader", values="chosen_method")
    picked = picked.reindex(columns=readers).dropna()
    if len(picked):
        observed = float((picked.nunique(axis=1) == 1).mean())
        note = f"all readers chose the same method in {observed:.0%} of trials"
        rows.append(_agreement_row(label, "choice", picked, methods, first, note))
    for criterion in CRITERION_KEYS:
        scores = first.pivot_table(index=["trial", "position"], columns="reader", values=criterion)
        scores = scores.reindex(columns=readers).dropna()
        if len(scores):
            values = range(LIKERT_MIN, LIKERT_MAX + 1)
            note = "items: trial x position"
            rows.append(_agreement_row(label, criterion, scores, values, first, note))
    return rows


def consistency_rows(readings: pd.DataFrame) -> list[dict]:
    """Rows of the ``consistency`` analysis (module docstring): per reader with repeats."""
    rows = []
    picked = choices(readings)
    for reader in _readers(readings):
        mine = readings[readings["reader"] == reader]
        repeats = mine[mine["repeat_of"] != ""]
        if repeats.empty:
            continue
        by_trial = picked[picked["reader"] == reader].set_index("trial")["chosen_method"]
        pairs_seen = [
            (by_trial[original], by_trial[again])
            for again, original in repeats.drop_duplicates("trial")[
                ["trial", "repeat_of"]
            ].itertuples(index=False, name=None)
            if again in by_trial and original in by_trial
        ]
        n_subjects = repeats["subject"].nunique()
        if pairs_seen:
            same = sum(a == b for a, b in pairs_seen)
            value = clopper_pearson(same, len(pairs_seen))
            rows.append(
                _row(
                    "consistency",
                    reader,
                    "agreement rate",
                    Interval(value.estimate, value.low, value.high),
                    criterion="choice",
                    interval=CLOPPER_PEARSON,
                    n=len(pairs_seen),
                    n_subjects=n_subjects,
                    note="same method chosen at the repeat",
                )
            )
        firsts = mine.set_index(["trial", "method"])
        for criterion in CRITERION_KEYS:
            diffs = []
            for row in repeats.itertuples(index=False):
                again = getattr(row, criterion)
                original = firsts[criterion].get((row.repeat_of, row.method), np.nan)
                if np.isfinite(again) and np.isfinite(original):
                    diffs.append(abs(again - original))
            if not diffs:
                continue
            same = float(np.mean(np.asarray(diffs) == 0))
            rows.append(
                _row(
                    "consistency",
                    reader,
                    "share of identical scores",
                    Interval(same, float("nan"), float("nan")),
                    criterion=criterion,
                    n=len(diffs),
                    n_subjects=n_subjects,
                    note=f"mean |difference| {np.mean(diffs):.2f}",
                )
            )
    return rows


def analyze(readings: pd.DataFrame, methods: Sequence[str], *, seed: int = 0) -> pd.DataFrame:
    """Every analysis of the module docstring as one table (columns :data:`RESULT_COLUMNS`);
    ``seed`` seeds the bootstrap."""
    rows = [
        *preference_rows(readings, methods, seed),
        *likert_rows(readings, methods, seed),
        *agreement_rows(readings, methods),
        *consistency_rows(readings),
    ]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
