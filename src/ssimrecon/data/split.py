"""Deterministic train/val/test split of subject ids -> split.csv (columns ``subject, split``).

Train selects the weights, validation selects the checkpoint, test scores Table 1.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ssimrecon.errors import SsimreconError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def make_split(
    subjects: list[str], n_train: int, n_val: int, n_test: int | None, seed: int
) -> pd.DataFrame:
    """Split ``subjects`` into ``n_train`` train, ``n_val`` val and ``n_test`` test ids.

    Ids are sorted first, so the result depends only on the set of ids and ``seed``:
    ``numpy.random.default_rng(seed).permutation`` of the sorted ids, first ``n_train`` -> train,
    next ``n_val`` -> val, next ``n_test`` -> test (``None``: every remaining id); ids beyond are
    not listed. Train and val therefore never depend on ``n_test``. A split without a test subject
    is an error. Rows are sorted by split (train, val, test), then subject.
    """
    ids = sorted(str(s) for s in subjects)
    duplicates = sorted(s for s, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise SsimreconError(f"duplicate subject ids: {', '.join(duplicates)}")
    counts = [("split.n_train", n_train), ("split.n_val", n_val)]
    if n_test is not None:
        counts.append(("split.n_test", n_test))
    for key, value in counts:
        if int(value) != value or value < 1:
            raise SsimreconError(f"{key} must be a positive integer, got {value!r}")
    remaining = len(ids) - n_train - n_val
    if remaining < 1:
        raise SsimreconError(
            f"split.n_train ({n_train}) + split.n_val ({n_val}) = {n_train + n_val} leaves no test "
            f"subject of the {len(ids)} available subjects (a test set is required)"
        )
    if n_test is None:
        n_test = remaining
    elif n_test > remaining:
        raise SsimreconError(
            f"split.n_test ({n_test}) exceeds the {remaining} subjects left after split.n_train "
            f"({n_train}) + split.n_val ({n_val}) of {len(ids)}"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen = [ids[i] for i in order[: n_train + n_val + n_test]]
    labels = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    table = pd.DataFrame({"subject": chosen, "split": labels})
    rank = table["split"].map({name: i for i, name in enumerate(SPLITS)})
    table = table.assign(_rank=rank).sort_values(["_rank", "subject"], ignore_index=True)
    return table.drop(columns="_rank")


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
