"""Trials: seeded, stratified over subjects, balanced positions, repeats later and rotated."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from ssimrecon.errors import ConfigError
from ssimrecon.reader_study.trials import draw_trials

METHODS = ["Net-mse", "Net-mse-dssim"]


def _slices(subjects: int = 4, per_subject: int = 10, low_signal: int = 3) -> pd.DataFrame:
    """``per_subject`` slices per subject; the first ``low_signal`` of each below 0.05."""
    rows = [
        (f"S{s}", i, 0.01 if i < low_signal else 0.4)
        for s in range(subjects)
        for i in range(per_subject)
    ]
    return pd.DataFrame(rows, columns=["subject", "slice", "slice_signal"])


def _draw(methods: list[str] = METHODS, **overrides):
    settings = {"trials": 10, "repeats": 3, "seed": 5, "min_signal_fraction": 0.05, **overrides}
    return draw_trials(_slices(), methods, **settings)


def test_trials_are_stratified_over_subjects_and_skip_low_signal_slices() -> None:
    trials = _draw()
    first = [t for t in trials if not t.repeat_of]
    counts = Counter(t.subject for t in first)
    assert sorted(counts.values()) == [2, 2, 3, 3] and len(first) == 10
    assert all(t.slice >= 3 for t in trials)  # slices 0-2 are below the signal filter
    assert len({(t.subject, t.slice) for t in first}) == 10  # no slice twice
    assert [t.sequence for t in trials] == list(range(1, 14))


def test_the_same_seed_draws_the_same_session_and_another_seed_another() -> None:
    assert _draw() == _draw()
    other = _draw(seed=6)
    assert [(t.subject, t.slice, t.methods) for t in other] != [
        (t.subject, t.slice, t.methods) for t in _draw()
    ]


def test_positions_are_balanced_and_ids_are_opaque() -> None:
    trials = _draw(trials=12, repeats=0)
    assert Counter(t.methods[0] for t in trials) == {"Net-mse": 6, "Net-mse-dssim": 6}
    assert len({t.trial for t in trials}) == 12
    for t in trials:
        assert len(t.trial) == 9 and t.trial[0] == "t" and int(t.trial[1:], 16) >= 0
        assert t.subject not in t.trial
    three = _draw(trials=9, repeats=0, methods=["zero-filled", *METHODS])
    for position in range(3):
        assert Counter(t.methods[position] for t in three) == {m: 3 for m in three[0].methods}


def test_repeats_come_in_the_second_half_with_the_positions_rotated() -> None:
    trials = _draw(trials=10, repeats=4)
    by_id = {t.trial: t for t in trials}
    repeats = [t for t in trials if t.repeat_of]
    assert len(repeats) == 4 and len({t.repeat_of for t in repeats}) == 4
    for again in repeats:
        original = by_id[again.repeat_of]
        assert not original.repeat_of and original.sequence <= 5 < again.sequence
        assert (again.subject, again.slice) == (original.subject, original.slice)
        assert again.methods == tuple(reversed(original.methods))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"trials": 40}, "reader_study.trials"),  # 10 per subject, 7 slices pass the filter
        ({"repeats": 6}, "reader_study.repeats"),
        ({"methods": ["Net-mse"]}, "reader_study.methods"),
        ({"min_signal_fraction": 0.9}, "evaluation.min_signal_fraction"),
    ],
)
def test_a_design_that_cannot_be_drawn_names_its_key(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _draw(**overrides)
