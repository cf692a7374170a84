"""``ssimrecon reader-study make --config-json``: the ``reader_study`` section as the workflow
hands it (methods resolved, ``enabled`` dropped) plus ``evaluation.min_signal_fraction``; the
workflow's helpers that resolve and build it (workflow/rules/reader_study.smk)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ssimrecon.config.runs import ZERO_FILLED
from ssimrecon.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ReaderStudySettings:
    """methods: shown per trial, in the order comparisons use (baseline first; ``zero-filled``
    allowed); trials: first readings; repeats: of them shown again; seed of every draw; tasks:
    ``choice`` and/or ``likert``; zoom: magnification of the page's zoom; min_signal_fraction:
    slices below it are never shown."""

    methods: list[str]
    trials: int
    repeats: int
    seed: int
    tasks: list[str]
    zoom: float
    min_signal_fraction: float


def resolve_methods(section: dict, runs: Mapping[str, Any], study: bool) -> list[str]:
    """``reader_study.methods`` checked against the workflow's runs (name -> run with an
    ``acceleration``); null: every run, which a study (many runs) refuses. ConfigError names the
    key."""
    methods = section["methods"]
    if methods is None:
        if study:
            raise ConfigError("reader_study.methods: a study has many runs; name those to show")
        methods = list(runs)
    unknown = [m for m in methods if m != ZERO_FILLED and m not in runs]
    if unknown:
        raise ConfigError(
            f"reader_study.methods: {unknown[0]!r} is neither a run ({', '.join(runs)}) "
            f"nor {ZERO_FILLED}"
        )
    if len(methods) < 2:
        raise ConfigError(f"reader_study.methods: need at least two methods, got {methods}")
    if len({runs[m].acceleration for m in methods if m in runs}) != 1:
        raise ConfigError("reader_study.methods: the runs shown must share one acceleration")
    return list(methods)


def settings_values(section: dict, methods: list[str], min_signal_fraction: float) -> dict:
    """What ``--config-json`` holds (the fields of :class:`ReaderStudySettings`)."""
    values = {k: v for k, v in section.items() if k != "enabled"}
    return {**values, "methods": methods, "min_signal_fraction": min_signal_fraction}
