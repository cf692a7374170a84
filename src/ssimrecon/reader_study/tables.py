"""Read the study's CSV files (key, answers) as text, so that ids stay ids and empty cells stay
empty; errors name the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ssimrecon.errors import SsimreconError


def read_text_csv(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    """Every cell of the CSV at ``path`` as a string (empty: ``""``); it must hold ``columns``
    and at least one row. ``what`` names the kind of file in errors."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SsimreconError(f"{path}: cannot read the {what} ({exc})") from None
    absent = [c for c in columns if c not in table.columns]
    if absent or table.empty:
        detail = f"missing columns {absent}" if absent else "no rows"
        raise SsimreconError(f"{path}: not a reader-study {what} ({detail})")
    return table
