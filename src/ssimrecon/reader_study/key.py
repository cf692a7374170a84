"""The key file: which method each position of each trial shows (kept away from the readers).

``key.csv``, one row per trial and position: ``session, trial, sequence, subject, slice,
repeat_of, position, method, method_order`` (``position`` A, B, ... left to right; ``repeat_of``
the trial id a repeat shows again, empty for a first reading; ``session`` the page's id, which its
exported answers carry; ``method_order`` the method's place in ``reader_study.methods``, 0 first:
the analysis compares each method with those listed before it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ssimrecon.atomic import write_csv_atomic
from ssimrecon.errors import SsimreconError
from ssimrecon.reader_study.design import POSITIONS
from ssimrecon.reader_study.tables import read_text_csv
from ssimrecon.reader_study.trials import Trial

KEY_COLUMNS = (
    "session",
    "trial",
    "sequence",
    "subject",
    "slice",
    "repeat_of",
    "position",
    "method",
    "method_order",
)


def key_table(session: str, trials: Sequence[Trial], methods: Sequence[str]) -> pd.DataFrame:
    """The key of ``trials`` (``methods``: the study's methods in their listed order) as a table
    (columns :data:`KEY_COLUMNS`)."""
    rank = {m: i for i, m in enumerate(methods)}
    rows = [
        (session, t.trial, t.sequence, t.subject, t.slice, t.repeat_of, POSITIONS[i], m, rank[m])
        for t in trials
        for i, m in enumerate(t.methods)
    ]
    return pd.DataFrame(rows, columns=list(KEY_COLUMNS))


def write_key(path: Path, session: str, trials: Sequence[Trial], methods: Sequence[str]) -> Path:
    """Write the key CSV atomically."""
    return write_csv_atomic(key_table(session, trials, methods), path)


def read_key(path: Path) -> pd.DataFrame:
    """Read and check a key CSV; errors name the file."""
    path = Path(path)
    table = read_text_csv(path, KEY_COLUMNS, "key")
    if table["session"].nunique() != 1:
        raise SsimreconError(f"{path}: the key holds more than one session")
    if table.duplicated(["trial", "position"]).any():
        raise SsimreconError(f"{path}: a trial lists one position twice")
    bad = sorted(set(table["repeat_of"]) - set(table["trial"]) - {""})
    if bad:
        raise SsimreconError(f"{path}: repeat_of names unknown trial {bad[0]}")
    try:
        for column in ("sequence", "slice", "method_order"):
            table[column] = table[column].astype(int)
    except ValueError:
        raise SsimreconError(f"{path}: column {column} must hold integers") from None
    if (table.groupby("method")["method_order"].nunique() != 1).any():
        raise SsimreconError(f"{path}: a method has two method_order values")
    return table[list(KEY_COLUMNS)]


def methods_in_order(key: pd.DataFrame) -> list[str]:
    """The key's methods in the order ``reader_study.methods`` listed them."""
    ranks = key.drop_duplicates("method").sort_values("method_order")
    return list(ranks["method"])
