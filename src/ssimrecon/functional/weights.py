"""The weights of a composite loss, ``{term: weight}``: the one rule they follow.

Every weight is a non-negative finite number (0 keeps a term as a logged-only part) and at least
one is positive.  :func:`ssimrecon.functional.losses.build_loss` applies it to the loss it builds,
and :mod:`ssimrecon.config.check` to every run's loss before any job.  Importing this module does
not import torch (the workflow checks its config while Snakemake parses it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ssimrecon.errors import ConfigError

__all__ = ["check_weight", "check_weights"]


def check_weight(weight: Any, key: str) -> float:
    """``weight`` as a float; ConfigError ``<key>: <problem>`` unless it is a non-negative finite
    number (a bool is not one)."""
    number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
    if not number or not math.isfinite(weight) or weight < 0:
        raise ConfigError(f"{key}: weight must be a non-negative finite number, got {weight!r}")
    return float(weight)


def check_weights(weights: Any, key: str) -> dict[str, float]:
    """``weights`` as ``{term: float}``; ConfigError ``<key>: <problem>`` (``<key>.<term>`` for
    one weight, :func:`check_weight`) unless it is a non-empty mapping whose weights are all
    valid and one positive."""
    if not isinstance(weights, Mapping) or not weights:
        raise ConfigError(f"{key}: expected a non-empty mapping of term -> weight, got {weights!r}")
    checked = {term: check_weight(weight, f"{key}.{term}") for term, weight in weights.items()}
    if not any(checked.values()):
        raise ConfigError(f"{key}: every weight is 0; at least one must be positive")
    return checked
