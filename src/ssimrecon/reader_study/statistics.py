"""The statistics of a reader study, each a small pure function.

- :func:`clopper_pearson`: exact binomial interval and two-sided exact binomial test
  (``scipy.stats.binomtest``, ``proportion_ci(method="exact")``).
- :func:`cluster_bootstrap_rate`: a ratio of sums over clusters (subjects) with a percentile
  interval from resampling the clusters with replacement.
- :func:`cohen_kappa` (optionally quadratic-weighted) and :func:`fleiss_kappa`.
- :func:`signed_rank`: Wilcoxon signed-rank test of paired differences (Pratt's treatment of
  zero differences).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval (``low``, ``high``) and a p-value (NaN where none)."""

    estimate: float
    low: float
    high: float
    p_value: float = float("nan")


def clopper_pearson(successes: int, n: int, null: float = 0.5) -> Interval:
    """Rate ``successes / n`` with its exact (Clopper-Pearson) 95% interval and the exact
    two-sided binomial test against ``null``; NaN when ``n == 0``."""
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    test = stats.binomtest(int(successes), int(n), null)
    ci = test.proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return Interval(successes / n, float(ci.low), float(ci.high), float(test.pvalue))


def cluster_bootstrap_rate(
    successes: Sequence[float], totals: Sequence[float], *, resamples: int = 10000, seed: int = 0
) -> Interval:
    """``sum(successes) / sum(totals)`` over clusters with a 95% percentile interval from
    ``resamples`` draws of the clusters with replacement (numpy ``default_rng(seed)``); a
    resample whose totals sum to 0 is dropped. No p-value."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(totals, dtype=float)
    if n.sum() == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(n), size=(resamples, len(n)))
    top, bottom = k[draws].sum(axis=1), n[draws].sum(axis=1)
    rates = top[bottom > 0] / bottom[bottom > 0]
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(rates, [alpha, 1 - alpha])
    return Interval(float(k.sum() / n.sum()), float(low), float(high))


def cohen_kappa(first: Sequence, second: Sequence, *, weights: str | None = None) -> float:
    """Cohen's kappa of two raters' labels of the same items; ``weights="quadratic"`` for
    ordinal scores (the labels must then be numbers). NaN when there is no item or the chance
    agreement is 1 (both raters always gave one and the same label)."""
    a, b = list(first), list(second)
    if len(a) != len(b):
        raise ValueError(f"two raters rated {len(a)} and {len(b)} items")
    if not a:
        return float("nan")
    labels = sorted(set(a) | set(b))
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for x, y in zip(a, b):
        table[index[x], index[y]] += 1
    table /= table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0))
    if weights is None:
        disagreement = 1.0 - np.eye(len(labels))
    elif weights == "quadratic":
        values = np.asarray(labels, dtype=float)
        disagreement = (values[:, None] - values[None, :]) ** 2
    else:
        raise ValueError(f"weights must be None or 'quadratic', got {weights!r}")
    chance = float((disagreement * expected).sum())
    if chance == 0:
        return float("nan")
    return 1.0 - float((disagreement * table).sum()) / chance


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an (items, categories) table of how many raters put each item in each
    category (every item rated by the same number m >= 2 of raters). NaN when chance agreement
    is 1."""
    counts = np.asarray(counts, dtype=float)
    raters = counts.sum(axis=1)
    if counts.size == 0 or np.any(raters != raters[0]) or raters[0] < 2:
        raise ValueError("every item needs the same number (>= 2) of ratings")
    m = raters[0]
    p_item = ((counts**2).sum(axis=1) - m) / (m * (m - 1))
    p_category = counts.sum(axis=0) / counts.sum()
    chance = float((p_category**2).sum())
    if chance == 1:
        return float("nan")
    return (float(p_item.mean()) - chance) / (1 - chance)


def signed_rank(differences: Sequence[float]) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (``zero_method="pratt"``,
    scipy's exact or normal method as it chooses) and a note; p = 1 when every difference is
    0, NaN with fewer than two differences."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return float("nan"), "fewer than 2 pairs"
    if np.all(d == 0):
        return 1.0, "every difference is 0"
    return float(stats.wilcoxon(d, zero_method="pratt").pvalue), ""
