"""Seeded, subject-stratified trials with a balanced, recorded order of the methods.

Rules (:func:`draw_trials`), all draws from one ``numpy.random.default_rng(seed)``:

1. **Slices.** Only slices with ``slice_signal >= min_signal_fraction`` can be shown. The trials
   are spread over the subjects as evenly as possible (each subject gets ``trials // n_subjects``,
   a seeded choice of subjects one more); within a subject, distinct slices are drawn uniformly.
2. **Order of trials.** The first readings are shuffled.
3. **Positions.** Per block of ``len(methods)`` consecutive first readings, a random Latin square:
   every method appears once at every position (A, B, ...) in each block, so with two methods each
   is on the left in half the trials (one more on one side when the count is odd).
4. **Repeats** (intra-reader consistency): ``repeats`` first readings from the first half of the
   sequence are shown again, under a new trial id, with the methods' order rotated by one position
   (two methods: sides swapped), at random places in the second half.

Trial ids are ``t`` + 8 random hex digits: they carry no subject, slice or method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ssimrecon.errors import ConfigError
from ssimrecon.reader_study.design import POSITIONS


@dataclass(frozen=True)
class Trial:
    """One trial of the page: its opaque id, 1-based place in the page, the slice shown, the
    method at each position (A, B, ...) and, for a repeat, the id of the trial it repeats."""

    trial: str
    sequence: int
    subject: str
    slice: int
    methods: tuple[str, ...]
    repeat_of: str = ""


def check_design(methods: Sequence[str], trials: int, repeats: int) -> None:
    """Raise ConfigError naming ``reader_study.*`` for a design that cannot be drawn."""
    if len(methods) < 2 or len(set(methods)) != len(methods):
        raise ConfigError(
            f"reader_study.methods: need at least two different methods, got {list(methods)}"
        )
    if len(methods) > len(POSITIONS):
        raise ConfigError(
            f"reader_study.methods: at most {len(POSITIONS)} methods per trial, got {len(methods)}"
        )
    if trials < 1:
        raise ConfigError(f"reader_study.trials: must be >= 1, got {trials}")
    if not 0 <= repeats <= trials // 2:
        raise ConfigError(
            f"reader_study.repeats: must be between 0 and trials // 2 = {trials // 2}, "
            f"got {repeats}"
        )


def stratified_slices(
    slices: pd.DataFrame, trials: int, min_signal_fraction: float, rng: np.random.Generator
) -> list[tuple[str, int]]:
    """(subject, slice) of every first reading, subjects in sorted order (rule 1).

    ``slices``: columns ``subject, slice, slice_signal``, one row per slice of the test split."""
    pool = slices[slices["slice_signal"] >= min_signal_fraction]
    subjects = sorted(set(pool["subject"].astype(str)))
    if not subjects:
        raise ConfigError(
            f"reader_study: no test slice has slice_signal >= {min_signal_fraction} "
            "(evaluation.min_signal_fraction)"
        )
    counts = np.full(len(subjects), trials // len(subjects))
    counts[rng.choice(len(subjects), trials % len(subjects), replace=False)] += 1
    chosen = []
    for subject, count in zip(subjects, counts):
        available = np.sort(pool.loc[pool["subject"].astype(str) == subject, "slice"].to_numpy())
        if count > len(available):
            raise ConfigError(
                f"reader_study.trials: {trials} trials over {len(subjects)} test subjects need "
                f"{count} slices of {subject}, which has {len(available)} with slice_signal >= "
                f"{min_signal_fraction}"
            )
        picked = np.sort(rng.choice(available, int(count), replace=False))
        chosen += [(subject, int(s)) for s in picked]
    return chosen


def balanced_orders(
    methods: Sequence[str], n: int, rng: np.random.Generator
) -> list[tuple[str, ...]]:
    """``n`` orders of ``methods``, blocks of ``len(methods)`` forming random Latin squares
    (rule 3)."""
    k = len(methods)
    orders: list[tuple[str, ...]] = []
    while len(orders) < n:
        first = [methods[i] for i in rng.permutation(k)]
        square = [tuple(first[r:] + first[:r]) for r in range(k)]
        orders += [square[i] for i in rng.permutation(k)]
    return orders[:n]


def _trial_ids(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct opaque ids ``t<8 hex digits>``."""
    ids: list[str] = []
    while len(ids) < n:
        candidate = f"t{int(rng.integers(0, 16**8)):08x}"
        if candidate not in ids:
            ids.append(candidate)
    return ids


def draw_trials(
    slices: pd.DataFrame,
    methods: Sequence[str],
    *,
    trials: int,
    repeats: int,
    seed: int,
    min_signal_fraction: float,
) -> list[Trial]:
    """The session's trials in page order (rules in the module docstring)."""
    check_design(methods, trials, repeats)
    rng = np.random.default_rng(seed)
    chosen = stratified_slices(slices, trials, min_signal_fraction, rng)
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    orders = balanced_orders(list(methods), len(chosen), rng)
    ids = _trial_ids(len(chosen) + repeats, rng)
    first = [
        Trial(trial_id, 0, subject, index, order)
        for trial_id, (subject, index), order in zip(ids, chosen, orders)
    ]
    half = (len(first) + 1) // 2
    repeated = sorted(rng.choice(half, repeats, replace=False)) if repeats else []
    again = [
        Trial(
            trial_id,
            0,
            first[i].subject,
            first[i].slice,
            first[i].methods[1:] + first[i].methods[:1],
            repeat_of=first[i].trial,
        )
        for trial_id, i in zip(ids[len(first) :], repeated)
    ]
    tail = first[half:] + again
    sequence = first[:half] + [tail[i] for i in rng.permutation(len(tail))]
    return [
        Trial(t.trial, n, t.subject, t.slice, t.methods, t.repeat_of)
        for n, t in enumerate(sequence, start=1)
    ]
