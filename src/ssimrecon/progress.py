"""Progress of long steps, visible both on a terminal and in a job's log file.

On a terminal this is a tqdm bar. When stderr is not a terminal (a Snakemake job writes stderr to
its log, a SLURM job to a file) tqdm would print nothing until the end, so a log line is written
instead every ``interval`` seconds (``SSIMRECON_PROGRESS_SECONDS``, default 30) and once at the end:
``<desc>: <done>/<total> <unit> (<pct>%), <rate> <unit>/s, ETA <h:mm:ss>``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)

T = TypeVar("T")
INTERVAL_VAR = "SSIMRECON_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_VAR, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def _plural(unit: str, value: float) -> str:
    """``subject`` -> ``subjects`` unless ``value`` is 1 (units already plural stay as they are)."""
    return unit if unit.endswith("s") or round(value) == 1 else f"{unit}s"


def _amount(value: float, unit: str) -> str:
    """``1.23 GB`` for bytes, ``1234 slices`` / ``1 subject`` otherwise."""
    if unit == "B":
        for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.2f} {prefix}B"
        return f"{value:.0f} B"
    return f"{value:.0f} {_plural(unit, value)}"


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LogProgress:
    """tqdm's ``update``/``close`` interface, reporting by log lines (see the module docstring)."""

    def __init__(
        self,
        total: float | None,
        desc: str,
        unit: str,
        initial: float = 0,
        interval: float | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.start_n = initial
        self.interval = _interval() if interval is None else interval
        self.clock = clock
        self.start = self.last = clock()
        self.closed = False

    def line(self) -> str:
        """The progress line for the current state."""
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = (self.n - self.start_n) / elapsed
        done = _amount(self.n, self.unit)
        per_s = f"{_amount(rate, self.unit)}/s"
        if self.total:
            left = (self.total - self.n) / rate if rate > 0 else math.inf
            pct = 100.0 * self.n / self.total
            # bytes keep their unit on both numbers (1.00 GB of 4.00 GB); counts name it once
            done = done if self.unit == "B" else f"{self.n:.0f}"
            total = _amount(self.total, self.unit)
            return f"{self.desc}: {done} of {total} ({pct:.0f}%), {per_s}, ETA {_clock(left)}"
        return f"{self.desc}: {done}, {per_s}, elapsed {_clock(elapsed)}"

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            log.info("%s", self.line())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            log.info("%s", self.line())

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: float | None, desc: str, unit: str, initial: float = 0) -> tqdm | LogProgress:
    """A progress reporter with ``update(n)`` and ``close()`` (also a context manager): a tqdm bar
    on a terminal, :class:`LogProgress` otherwise."""
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, unit_scale=unit == "B")
    return LogProgress(total, desc, unit, initial)


def track(iterable: Iterable[T], desc: str, unit: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``iterable`` while reporting progress (one ``unit`` per item)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with progress(total, desc, unit) as bar:
        for item in iterable:
            yield item
            bar.update(1)
