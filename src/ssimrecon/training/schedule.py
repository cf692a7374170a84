"""The learning rate of every optimiser step (``training.lr_schedule``), a pure function of the
step, so a resumed run needs no scheduler state.

* ``constant``: ``lr`` throughout (the paper: Adam at 1e-4).
* ``cosine``: ``lr * (1 + cos(pi * t)) / 2`` over the run's steps, t = step / steps in [0, 1).
* ``onecycle``: ``torch.optim.lr_scheduler.OneCycleLR``'s defaults (cosine annealing): from
  ``lr / 25`` up to ``lr`` over the first 30% of the steps, then down to ``lr / 25 / 1e4``
  (tests/training/test_schedule.py compares the two step by step).
"""

from __future__ import annotations

import math

__all__ = ["LR_SCHEDULES", "learning_rate"]

LR_SCHEDULES = ("constant", "cosine", "onecycle")
_WARMUP, _DIV, _FINAL_DIV = 0.3, 25.0, 1e4


def _cos_between(start: float, end: float, t: float) -> float:
    """Cosine from ``start`` (t = 0) to ``end`` (t = 1)."""
    return end + (start - end) * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0))) / 2


def learning_rate(schedule: str, lr: float, step: int, steps: int) -> float:
    """The learning rate of 0-based optimiser ``step`` of ``steps`` in all under ``schedule``."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(
            f"training.lr_schedule: must be one of {list(LR_SCHEDULES)}, got {schedule!r}"
        )
    if schedule == "constant" or steps <= 1:
        return lr
    if schedule == "cosine":
        return _cos_between(lr, 0.0, step / steps)
    peak = float(_WARMUP * steps) - 1  # the step at lr, as torch's OneCycleLR places it
    if step <= peak:
        return _cos_between(lr / _DIV, lr, step / peak if peak > 0 else 1.0)
    return _cos_between(lr, lr / _DIV / _FINAL_DIV, (step - peak) / (steps - 1 - peak))
