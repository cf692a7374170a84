"""Deterministic train/val/test split of subject ids -> split.csv (columns ``subject, split``).

Train selects the weights, validation selects the checkpoint, test scores Table 1. The unit of the
split is the participant (a person): every volume of a BIDS participant (sessions, runs) lands in
the same set; where no participant is known (IXI, a folder of files) each subject is its own.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ssimrecon.errors import SsimreconError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def make_split(
    subjects: list[str],
    n_train: int,
    n_val: int,
    n_test: int | None,
    seed: int,
    participants: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Split ``subjects`` into ``n_train`` train, ``n_val`` val and ``n_test`` test participants.

    ``participants`` maps a subject id to its person (default: each subject its own); the counts
    are participants, and all of a participant's subjects go to one set. Participant ids are sorted
    first, so the result depends only on the ids and ``seed``: ``numpy.random.default_rng(seed)
    .permutation`` of the sorted participants, first ``n_train`` -> train, next ``n_val`` -> val,
    next ``n_test`` -> test (``None``: every remaining one); those beyond are not listed. Train and
    val therefore never depend on ``n_test``. A split without a test participant is an error. Rows
    are sorted by split (train, val, test), then subject.
    """
    ids = sorted(str(s) for s in subjects)
    duplicates = sorted(s for s, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise SsimreconError(f"duplicate subject ids: {', '.join(duplicates)}")
    person = {s: str((participants or {}).get(s, s)) for s in ids}
    people = sorted(set(person.values()))
    counts = [("split.n_train", n_train), ("split.n_val", n_val)]
    if n_test is not None:
        counts.append(("split.n_test", n_test))
    for key, value in counts:
        if int(value) != value or value < 1:
            raise SsimreconError(f"{key} must be a positive integer, got {value!r}")
    unit = "subjects" if len(people) == len(ids) else f"participants ({len(ids)} volumes)"
    remaining = len(people) - n_train - n_val
    if remaining < 1:
        raise SsimreconError(
            f"split.n_train ({n_train}) + split.n_val ({n_val}) = {n_train + n_val} leaves no test "
            f"subject of the {len(people)} available {unit} (a test set is required)"
        )
    if n_test is None:
        n_test = remaining
    elif n_test > remaining:
        raise SsimreconError(
            f"split.n_test ({n_test}) exceeds the {remaining} {unit.split()[0]} left after "
            f"split.n_train ({n_train}) + split.n_val ({n_val}) of {len(people)}"
        )
    order = np.random.default_rng(seed).permutation(len(people))
    labels = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    set_of = {people[i]: label for i, label in zip(order, labels)}
    chosen = [(s, set_of[person[s]]) for s in ids if person[s] in set_of]
    table = pd.DataFrame(chosen, columns=["subject", "split"])
    rank = table["split"].map({name: i for i, name in enumerate(SPLITS)})
    table = table.assign(_rank=rank).sort_values(["_rank", "subject"], ignore_index=True)
    return table.drop(columns="_rank")


def read_participants(path: Path | str) -> dict[str, str]:
    """subject -> participant of a subjects.csv, in file order (the participant is the
    ``participant`` column where a row has one (fastMRI: the file's ``patient_id``, so a patient's
    pre- and post-contrast files share a set), else :func:`~ssimrecon.data.bids.participant_of`
    of ``source_name``; a table without that column: each subject its own). SsimreconError
    naming the file if it is missing, unreadable, has no ``subject`` column or repeats a subject
    id."""
    from ssimrecon.data.bids import participant_of

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise SsimreconError(f"subjects table {path} does not exist") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SsimreconError(f"cannot read subjects table {path}: {exc}") from exc
    if "subject" not in table.columns:
        raise SsimreconError(f"subjects table {path} has no 'subject' column")
    duplicates = sorted(set(table.loc[table["subject"].duplicated(), "subject"]))
    if duplicates:
        raise SsimreconError(
            f"subjects table {path}: duplicate subject ids: {', '.join(duplicates)}"
        )
    if "source_name" not in table.columns:
        out = {s: s for s in table["subject"]}
    else:
        out = {s: participant_of(s, n) for s, n in zip(table["subject"], table["source_name"])}
    if "participant" in table.columns:
        out.update({s: p for s, p in zip(table["subject"], table["participant"]) if p})
    return out
