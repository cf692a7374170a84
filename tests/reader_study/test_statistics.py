"""The reader-study statistics against published worked examples and direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from ssimrecon.reader_study.statistics import (
    clopper_pearson,
    cluster_bootstrap_rate,
    cohen_kappa,
    fleiss_kappa,
    signed_rank,
)


def test_clopper_pearson_is_the_exact_beta_interval() -> None:
    from scipy.stats import beta

    value = clopper_pearson(7, 10)
    assert value.estimate == 0.7
    # the exact interval's definition: quantiles of Beta(k, n-k+1) and Beta(k+1, n-k)
    assert value.low == pytest.approx(beta.ppf(0.025, 7, 4))
    assert value.high == pytest.approx(beta.ppf(0.975, 8, 3))
    assert value.low == pytest.approx(0.3475, abs=1e-4) and value.high == pytest.approx(
        0.9333, abs=1e-4
    )
    assert value.p_value == pytest.approx(2 * (120 + 45 + 10 + 1) / 1024)  # P(X >= 7) twice
    assert clopper_pearson(0, 5).low == 0.0 and np.isnan(clopper_pearson(0, 0).estimate)


def test_cohen_kappa_of_the_textbook_table() -> None:
    # 50 items: both yes 20, both no 15, yes/no 5, no/yes 10 -> po 0.7, pe 0.5, kappa 0.4
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(first, first) == pytest.approx(1.0)
    assert np.isnan(cohen_kappa(["a", "a"], ["a", "a"]))


def test_quadratic_weighted_kappa_by_hand() -> None:
    a, b = [1, 2, 3, 4, 5, 3], [1, 3, 3, 5, 4, 2]
    observed = np.mean((np.subtract(a, b)) ** 2)
    expected = np.mean([(x - y) ** 2 for x in a for y in b])
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(1 - observed / expected)


def test_fleiss_kappa_of_fleiss_worked_example() -> None:
    # 10 subjects, 14 raters, 5 categories (Fleiss 1971 as tabulated by Wikipedia): 0.210
    table = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-4)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[1, 1], [2, 1]]))


def test_cluster_bootstrap_is_the_ratio_of_sums_and_narrows_with_agreeing_clusters() -> None:
    same = cluster_bootstrap_rate([3, 3, 3, 3], [4, 4, 4, 4], resamples=2000)
    assert (same.estimate, same.low, same.high) == (0.75, 0.75, 0.75)
    mixed = cluster_bootstrap_rate([4, 0, 4, 0, 4, 0], [4, 4, 4, 4, 4, 4], resamples=2000)
    assert mixed.estimate == 0.5 and mixed.low < 0.3 and mixed.high > 0.7
    again = cluster_bootstrap_rate([4, 0, 4, 0, 4, 0], [4, 4, 4, 4, 4, 4], resamples=2000)
    assert (again.low, again.high) == (mixed.low, mixed.high)  # seeded


def test_signed_rank_matches_scipy_and_handles_all_zero_differences() -> None:
    from scipy.stats import wilcoxon

    d = [1, 2, -1, 3, 0, 2, 1, 4]
    assert signed_rank(d)[0] == pytest.approx(wilcoxon(d, zero_method="pratt").pvalue)
    assert signed_rank([0, 0, 0]) == (1.0, "every difference is 0")
    assert np.isnan(signed_rank([1])[0])
