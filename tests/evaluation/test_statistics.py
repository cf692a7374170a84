"""statistics.py: Holm against a worked example, the bootstrap intervals against independent
resampling loops, the effect size and the Wilcoxon p against scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ssimrecon.evaluation.statistics import (
    bootstrap_interval,
    effect_size,
    hierarchical_interval,
    holm,
    paired_wilcoxon,
)


def test_holm_matches_a_worked_example_and_keeps_nan_out_of_the_family() -> None:
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, max(0.04 * 1, 0.06) = 0.06
    got = holm(np.array([0.01, 0.04, 0.03, 0.005]))
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])
    with_nan = holm(np.array([0.01, np.nan, 0.04, 0.03, 0.005]))
    np.testing.assert_allclose(with_nan[[0, 2, 3, 4]], [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(with_nan[1])
    assert holm(np.array([0.6, 0.9])).tolist() == [1.0, 1.0]  # capped at 1
    assert np.isnan(holm(np.array([np.nan]))).all()


def test_bootstrap_interval_agrees_with_scipy_and_is_seeded() -> None:
    d = np.random.default_rng(1).normal(0.01, 0.02, 8)
    mean, low, high = bootstrap_interval(d, 5000, seed=0)
    ref = stats.bootstrap(
        (d,), np.mean, n_resamples=5000, method="percentile", rng=np.random.default_rng(99)
    ).confidence_interval
    width = ref.high - ref.low
    assert mean == pytest.approx(d.mean())
    assert low == pytest.approx(ref.low, abs=0.05 * width)
    assert high == pytest.approx(ref.high, abs=0.05 * width)
    assert bootstrap_interval(d, 5000, seed=0) == (mean, low, high)
    assert bootstrap_interval(d, 5000, seed=1) != (mean, low, high)
    assert all(math.isnan(v) for v in bootstrap_interval(d[:1], 100, 0)[1:])


def _naive_hierarchical(c: np.ndarray, r: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The hierarchical bootstrap written as loops with Python's own generator."""
    rng = np.random.default_rng(seed)
    n = c.shape[1]
    out = []
    for _ in range(resamples):
        subjects = rng.choice(n, n)
        seeds_c = rng.choice(c.shape[0], c.shape[0])
        seeds_r = rng.choice(r.shape[0], r.shape[0])
        total = 0.0
        for s in subjects:
            total += np.mean([c[k, s] for k in seeds_c]) - np.mean([r[k, s] for k in seeds_r])
        out.append(total / n)
    return np.percentile(out, [2.5, 97.5])


def test_hierarchical_interval_agrees_with_a_naive_loop_and_widens_with_seed_noise() -> None:
    rng = np.random.default_rng(5)
    subject = rng.normal(0.8, 0.05, 6)  # shared subject effect: the pairing
    c = subject + 0.02 + rng.normal(0, 0.01, (3, 6))
    r = subject + rng.normal(0, 0.01, (3, 6))
    mean, low, high = hierarchical_interval(c, r, 4000, seed=2)
    naive = _naive_hierarchical(c, r, 4000, seed=11)
    width = naive[1] - naive[0]
    assert mean == pytest.approx(c.mean() - r.mean())
    assert low == pytest.approx(naive[0], abs=0.06 * width)
    assert high == pytest.approx(naive[1], abs=0.06 * width)
    noisy = c + rng.normal(0, 0.05, c.shape)
    _, low2, high2 = hierarchical_interval(noisy, r, 4000, seed=2)
    assert high2 - low2 > 1.5 * (high - low)
    # one seed per side: the subjects' bootstrap
    one = hierarchical_interval(c[:1], r[:1], 4000, seed=2)
    plain = bootstrap_interval(c[0] - r[0], 4000, seed=3)
    assert one[0] == pytest.approx(plain[0])
    assert one[1] == pytest.approx(plain[1], abs=0.1 * (plain[2] - plain[1]))


def test_effect_size_and_wilcoxon() -> None:
    d = np.array([0.1, 0.3, 0.2, 0.4])
    assert effect_size(d) == pytest.approx(d.mean() / d.std(ddof=1))
    assert math.isnan(effect_size(np.zeros(4))) and math.isnan(effect_size(d[:1]))
    a = pd.Series([1.0, 2.0, 3.5, 4.0, 5.5], index=list("abcde"))
    b = pd.Series([1.1, 1.8, 3.0, 3.0, 5.0], index=list("edcba"))  # aligned by index
    p, note = paired_wilcoxon(a, b)
    assert p == pytest.approx(stats.wilcoxon(a.to_numpy(), b.reindex(a.index).to_numpy()).pvalue)
    assert note == ""
