"""Read the answers the page exports and join them with the key.

An answers CSV (one per reader, as the page downloads it) has one row per answered trial and
position: ``session, reader, trial, sequence, position, chosen, <criteria>, complete, seconds``
(``chosen`` 1 for the position picked, 0 for the others, empty without a choice; scores 1-5 or
empty). :func:`read_answers` checks each file against the key (same session, known trials and
positions, the sequence the key gives) and returns the readings with the key's subject, slice,
repeat_of and method beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ssimrecon.errors import SsimreconError
from ssimrecon.reader_study.design import CRITERION_KEYS, LIKERT_MAX, LIKERT_MIN
from ssimrecon.reader_study.tables import read_text_csv

log = logging.getLogger(__name__)

ANSWER_COLUMNS = (
    "session",
    "reader",
    "trial",
    "sequence",
    "position",
    "chosen",
    *CRITERION_KEYS,
    "complete",
    "seconds",
)


def _numbers(table: pd.DataFrame, column: str, allowed: set[int], path: Path) -> pd.Series:
    """Column -> float (NaN where empty); anything but an allowed integer names file and column."""
    text = table[column].str.strip()
    values = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = (text != "") & ~values.isin(sorted(allowed))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SsimreconError(
            f"{path}: column {column} row {row + 2}: {text.iloc[row]!r} is not one of "
            f"{sorted(allowed)} or empty"
        )
    return values.astype(float)


def read_answer_file(path: Path, key: pd.DataFrame) -> pd.DataFrame:
    """One exported answers CSV joined with ``key`` (:func:`ssimrecon.reader_study.key.read_key`);
    errors name the file."""
    path = Path(path)
    table = read_text_csv(path, ANSWER_COLUMNS, "answers file")
    session = key["session"].iloc[0]
    other = sorted(set(table["session"]) - {session})
    if other:
        raise SsimreconError(
            f"{path}: answers of session {other[0]}, but the key is of session {session}"
        )
    readers = sorted(set(table["reader"]))
    if len(readers) != 1 or not readers[0]:
        raise SsimreconError(f"{path}: expected one reader id, got {readers}")
    if table.duplicated(["trial", "position"]).any():
        raise SsimreconError(f"{path}: a trial and position are answered twice")
    joined = table.merge(
        key, on=["session", "trial", "position"], how="left", suffixes=("", "_key")
    )
    unknown = joined["method"].isna()
    if unknown.any():
        row = joined[unknown].iloc[0]
        raise SsimreconError(
            f"{path}: trial {row['trial']} position {row['position']} is not in the key"
        )
    if (pd.to_numeric(joined["sequence"], errors="coerce") != joined["sequence_key"]).any():
        raise SsimreconError(f"{path}: a trial's sequence differs from the key's")
    joined["sequence"] = joined["sequence_key"]
    joined["chosen"] = _numbers(joined, "chosen", {0, 1}, path)
    for criterion in CRITERION_KEYS:
        joined[criterion] = _numbers(
            joined, criterion, set(range(LIKERT_MIN, LIKERT_MAX + 1)), path
        )
    picks = joined.dropna(subset=["chosen"]).groupby("trial")["chosen"].sum()
    if (picks != 1).any():
        raise SsimreconError(f"{path}: trial {picks[picks != 1].index[0]} has not one choice")
    joined["file"] = str(path)
    return joined.drop(columns=["sequence_key"])


def read_answers(paths: Sequence[Path], key: pd.DataFrame) -> pd.DataFrame:
    """Every reader's readings: one row per reader, trial and position (the key's columns plus
    reader, chosen, the criteria and file). A reader id in two files is refused."""
    if not paths:
        raise SsimreconError("reader-study analyze: no answers files given")
    frames = [read_answer_file(Path(p), key) for p in paths]
    seen: dict[str, str] = {}
    for frame in frames:
        reader, file = frame["reader"].iloc[0], frame["file"].iloc[0]
        if reader in seen:
            raise SsimreconError(f"reader {reader} answers in both {seen[reader]} and {file}")
        seen[reader] = file
        unanswered = key["trial"].nunique() - frame["trial"].nunique()
        if unanswered:
            log.warning("%s: reader %s left %d trials unanswered", file, reader, unanswered)
    return pd.concat(frames, ignore_index=True)
