"""The benchmark's bookkeeping: targets, rows, options, timing, the table and summary.csv.

Every row module (:mod:`ssimrecon_bench.ssim`, ``train``, ``shards``, ``loader``, ``demo``, ``dag``)
returns :class:`Row` objects; :mod:`ssimrecon_bench.runner` collects them and
:mod:`ssimrecon_bench.cli` writes them out.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssimrecon.errors import SsimreconError
from ssimrecon.training.bf16 import cpu_supports_bf16
from ssimrecon.training.tcmalloc import tcmalloc_loaded, tcmalloc_path

SUMMARY_COLUMNS = ("metric", "value", "unit", "target", "met")


class BenchError(SsimreconError):
    """A benchmark row could not be measured."""


@dataclass(frozen=True)
class Target:
    """``value op threshold`` with op ``>=`` or ``<=``; written to summary.csv as e.g. ``>= 5``."""

    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"target operator must be >= or <=, got {self.op!r}")

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the target; NaN and infinities never do."""
        if not math.isfinite(value):
            return False
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"

    @classmethod
    def parse(cls, text: str) -> Target | None:
        """Inverse of ``str()``; empty text -> None."""
        text = (text or "").strip()
        if not text:
            return None
        return cls(text[:2], float(text[2:]))


def at_least(threshold: float) -> Target:
    """Target ``>= threshold``."""
    return Target(">=", threshold)


def at_most(threshold: float) -> Target:
    """Target ``<= threshold``."""
    return Target("<=", threshold)


@dataclass
class Row:
    """One line of summary.csv; ``target`` None marks an informational row (met left empty)."""

    metric: str
    value: float
    unit: str
    target: Target | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        """None without a target, else whether the value meets it."""
        return None if self.target is None else self.target.met(self.value)

    def csv_dict(self) -> dict[str, str]:
        """The row as summary.csv writes it (:data:`SUMMARY_COLUMNS`)."""
        met = self.met
        return {
            "metric": self.metric,
            "value": repr(float(self.value)),
            "unit": self.unit,
            "target": "" if self.target is None else str(self.target),
            "met": "" if met is None else str(met),
        }


@dataclass
class Options:
    """What to measure and how hard (see :mod:`ssimrecon_bench.cli`).

    ``config`` is the paper's experiment config (:func:`ssimrecon_bench.config.load_config`); sizes
    are in pixels (H, W) or voxels (X, Y, Z).
    """

    quick: bool = False
    workflow_dir: Path = Path(".")
    work_dir: Path = Path(".")
    config: dict[str, Any] = field(default_factory=dict)
    train_size: tuple[int, int] | None = None
    train_steps: int | None = None
    train_rounds: int | None = None
    train_devices: tuple[str, ...] = ("cpu",)
    volume_shape: tuple[int, int, int] = (256, 256, 150)
    image_size: tuple[int, int] | None = None
    demo_cores: int = 2
    log_dir: Path | None = None


@dataclass
class Context:
    """Facts one row hands to another (shards for the loader, slices per volume for the
    projection)."""

    shards: list[Path] = field(default_factory=list)
    mask: Path | None = None
    slices_per_volume: float | None = None
    train: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


def _cuda_sync() -> Callable[[], None]:
    """``torch.cuda.synchronize`` once this process has started CUDA work, else a no-op.

    CUDA kernels run asynchronously: without a synchronisation the clock stops when the work is
    queued, not when it is done.  A CPU-only process never initialises CUDA and is timed as before.
    """
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.synchronize
    return lambda: None


def best_of_rounds(
    fns: dict[str, Callable[[], Any]], rounds: int, iters: int, warmup: int = 2
) -> dict[str, float]:
    """Seconds per call of each function: the best round mean, rounds interleaved (a, b, a, b, ...).

    Interleaving shares any background load between the contenders, so their ratio stays fair on a
    busy machine; the best round is the least disturbed one.  When the functions run CUDA work the
    device is synchronised before each clock reading (:func:`_cuda_sync`).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync = _cuda_sync()  # after the warm-up, which starts CUDA if the functions use it
    best = {name: math.inf for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            sync()
            best[name] = min(best[name], (time.perf_counter() - t0) / iters)
    return best


def format_table(rows: Sequence[Row]) -> str:
    """Fixed-width table: metric, value, unit, target, met, note."""

    def fmt(v: float) -> str:
        return "nan" if not math.isfinite(v) else f"{v:.4g}"

    header = ("metric", "value", "unit", "target", "met", "note")
    body = [
        (
            r.metric,
            fmt(r.value),
            r.unit,
            "" if r.target is None else str(r.target),
            "" if r.met is None else ("yes" if r.met else "NO"),
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(str(x[i])) for x in [header, *body]) for i in range(5)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(line[:5], widths)) + "  " + line[5]
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def write_summary(rows: Sequence[Row], path: Path) -> None:
    """summary.csv with :data:`SUMMARY_COLUMNS`, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row.csv_dict())
    os.replace(tmp, path)


def machine_info() -> dict[str, Any]:
    """CPU, cores, versions, allocator, bf16 support and GPU of this machine (details.json)."""
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "tcmalloc_library": tcmalloc_path(),
        "tcmalloc_loaded": tcmalloc_loaded(),
        "cpu_native_bf16": cpu_supports_bf16(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def run_script(main: Callable[[], int]) -> None:
    """``python -m ssimrecon_bench.<script>``: exit with ``main()``'s status; a user error
    (SsimreconError) is one ``error:`` line on stderr and exit status 2."""
    from ssimrecon.errors import SsimreconError

    try:
        sys.exit(main())
    except SsimreconError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
