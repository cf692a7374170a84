"""Deterministic train/validation split of subject ids -> split.csv (columns ``subject, split``)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ssimrecon.errors import SsimreconError

log = logging.getLogger(__name__)

SPLITS = ("train", "val")


def make_split(subjects: list[str], n_train: int, n_val: int, seed: int) -> pd.DataFrame:
    """Split ``subjects`` into ``n_train`` train and ``n_val`` val ids; the rest are not listed.

    Ids are sorted first, so the result depends only on the set of ids and ``seed``:
    ``numpy.random.default_rng(seed).permutation`` of the sorted ids, first ``n_train`` -> train,
    next ``n_val`` -> val. Rows are sorted by split, then subject.
    """
    ids = sorted(str(s) for s in subjects)
    duplicates = sorted(s for s, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise SsimreconError(f"duplicate subject ids: {', '.join(duplicates)}")
    for key, value in (("split.n_train", n_train), ("split.n_val", n_val)):
        if int(value) != value or value < 1:
            raise SsimreconError(f"{key} must be a positive integer, got {value!r}")
    if n_train + n_val > len(ids):
        raise SsimreconError(
            f"split.n_train ({n_train}) + split.n_val ({n_val}) = {n_train + n_val} exceeds the "
            f"{len(ids)} available subjects"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen = [ids[i] for i in order[: n_train + n_val]]
    table = pd.DataFrame({"subject": chosen, "split": ["train"] * n_train + ["val"] * n_val})
    return table.sort_values(["split", "subject"], ignore_index=True)


def read_subject_ids(path: Path | str) -> list[str]:
    """The ``subject`` column of a subjects.csv; SsimreconError naming the file if absent."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"subject": str})
    except FileNotFoundError as exc:
        raise SsimreconError(f"subjects table {path} does not exist") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SsimreconError(f"cannot read subjects table {path}: {exc}") from exc
    if "subject" not in table.columns:
        raise SsimreconError(f"subjects table {path} has no 'subject' column")
    return table["subject"].tolist()
