"""The statistics plan of Table 1 and the study: paired differences, intervals, effect sizes, Holm.

All comparisons are paired over subjects (per-subject means; slices are never the independent
units):

- :func:`paired_wilcoxon`: two-sided Wilcoxon signed-rank p of a method vs the baseline.
- :func:`bootstrap_interval`: the mean paired difference and its 95% percentile interval from
  ``resamples`` bootstrap resamples of the subjects (with replacement; ``numpy`` generator of
  ``seed``, so the same seed gives the same interval).
- :func:`hierarchical_interval`: a study's version: each resample draws the subjects (shared by
  both conditions: they are paired) and, per condition independently, its seeds (training runs),
  both with replacement; the difference is the mean over the drawn seeds and subjects.
- :func:`effect_size`: Cohen's d_z = mean paired difference / sd of the differences (ddof 1).
- :func:`holm`: Holm's step-down adjustment of a family of p-values (NaN stays NaN and is not
  counted in the family).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

#: two-sided confidence level of every interval
CONFIDENCE = 0.95

__all__ = [
    "CONFIDENCE",
    "paired_wilcoxon",
    "bootstrap_interval",
    "hierarchical_interval",
    "effect_size",
    "holm",
]


def paired_wilcoxon(a: pd.Series, b: pd.Series) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank p-value of paired samples ``a`` vs ``b`` (aligned by index).

    Returns (p, note); p is NaN with a note when the test is undefined.
    """
    a, b = a.align(b, join="inner")
    if len(a) < 2:
        return math.nan, f"p undefined: {len(a)} subject(s), need >= 2"
    diff = a.to_numpy(float) - b.to_numpy(float)
    if np.all(diff == 0):
        return math.nan, "p undefined: all subject differences are zero"
    return float(wilcoxon(a.to_numpy(float), b.to_numpy(float)).pvalue), ""


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    tail = 100.0 * (1.0 - CONFIDENCE) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_interval(
    differences: np.ndarray, resamples: int, seed: int
) -> tuple[float, float, float]:
    """(mean, low, high) of paired differences (n,) over subjects: the mean and its 95% bootstrap
    percentile interval from ``resamples`` resamples of the subjects; NaN for fewer than 2."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(d.mean())
    if d.size < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, d.size, size=(resamples, d.size))
    return (mean, *_percentiles(d[draws].mean(axis=1)))


def hierarchical_interval(
    condition: np.ndarray, reference: np.ndarray, resamples: int, seed: int
) -> tuple[float, float, float]:
    """(mean, low, high) of condition - reference from per-seed, per-subject means: ``condition``
    (seeds_c, n) and ``reference`` (seeds_r, n), columns the same subjects in the same order.

    The mean is over seeds then subjects; the interval resamples subjects (shared) and each side's
    seeds (independently), with replacement.  Subjects with a NaN in any seed are left out; NaN
    with fewer than 2 subjects.
    """
    c = np.atleast_2d(np.asarray(condition, dtype=np.float64))
    r = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    keep = np.isfinite(c).all(axis=0) & np.isfinite(r).all(axis=0)
    c, r = c[:, keep], r[:, keep]
    n = c.shape[1]
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(c.mean() - r.mean())
    if n < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    subjects = rng.integers(0, n, size=(resamples, n))
    seeds_c = rng.integers(0, c.shape[0], size=(resamples, c.shape[0]))
    seeds_r = rng.integers(0, r.shape[0], size=(resamples, r.shape[0]))
    # mean over drawn seeds of each subject, then over the drawn subjects
    per_subject_c = c[seeds_c].mean(axis=1)  # (resamples, n)
    per_subject_r = r[seeds_r].mean(axis=1)
    rows = np.arange(resamples)[:, None]
    diff = (per_subject_c[rows, subjects] - per_subject_r[rows, subjects]).mean(axis=1)
    return (mean, *_percentiles(diff))


def effect_size(differences: np.ndarray) -> float:
    """Cohen's d_z of paired differences (n,): mean / sd (ddof 1); NaN for n < 2 or sd 0."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return math.nan
    sd = float(d.std(ddof=1))
    return float(d.mean() / sd) if sd > 0 else math.nan


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of one family (any order; NaN entries stay NaN and do not count):
    the k-th smallest of m gets max over j <= k of min(1, (m - j + 1) p_(j))."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
