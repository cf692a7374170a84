"""Typed settings of the stages whose library functions take plain arguments.

Each dataclass is what one command's ``--config-json`` holds (:func:`ssimrecon.config.sections.
load_settings`); its docstring names the config keys it carries.  Shards use
:class:`ssimrecon.kspace.preprocess.Preprocessing` and training
:class:`ssimrecon.training.settings.TrainJob`.  No field has a default: the defaults live in
``workflow/schemas/config.schema.yaml`` only.
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "DemoArchiveSettings",
    "QcSettings",
    "SplitSettings",
    "MaskSettings",
    "EvaluateSettings",
    "TableSettings",
    "Figure2Settings",
    "StudySettings",
]


@dataclasses.dataclass(frozen=True)
class DemoArchiveSettings:
    """``source.demo``: number of pseudo-subjects, seed, volume shape (X, Y, Z) in voxels."""

    subjects: int
    seed: int
    shape: list[int]


@dataclasses.dataclass(frozen=True)
class QcSettings:
    """``exclude``: subject ids or file names skipped by QC."""

    exclude: list[str]


@dataclasses.dataclass(frozen=True)
class SplitSettings:
    """``split``: train, val and test subject counts (n_test None: every subject left) and the
    permutation seed."""

    n_train: int
    n_val: int
    n_test: int | None
    seed: int


@dataclasses.dataclass(frozen=True)
class MaskSettings:
    """``mask`` plus ``preprocessing.image_size`` (the mask's (H, W) in pixels)."""

    image_size: list[int]
    acceleration: float
    center_size: int
    seed: int
    power: float


@dataclasses.dataclass(frozen=True)
class EvaluateSettings:
    """``evaluation.min_signal_fraction``: slices at or above this signal fraction pass the slice
    filter (every slice is scored; the filter is recorded per slice)."""

    min_signal_fraction: float


@dataclasses.dataclass(frozen=True)
class TableSettings:
    """``evaluation.baseline`` (the network the p-values compare against),
    ``evaluation.min_signal_fraction`` (the slice filter the table states and checks) and
    ``preprocessing.scale_percentile`` (the intensity scale, hence the MSE units) and ``seeds``
    (how many seeds each network's metrics average: 1, or the length of ``study.seeds``)."""

    baseline: str
    min_signal_fraction: float
    scale_percentile: float
    seeds: int


@dataclasses.dataclass(frozen=True)
class Figure2Settings:
    """``figure`` plus ``evaluation.min_signal_fraction`` (which slices may be shown).

    zoom_center: (y, x) as fractions of the displayed image; zoom_size: side as a fraction of its
    smaller side (grown to at least 32 slice pixels); error_max: top of the error colour scale,
    whose unit is the data range (the maps show |est - ref| / data_range); dpi of the PNG.
    """

    zoom_center: list[float]
    zoom_size: float
    error_max: float
    dpi: int
    min_signal_fraction: float


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """A study's runs (``study`` expanded by :func:`ssimrecon.config.study.expand_runs`: run name
    -> {condition, network, loss, acceleration, seed, swept}) and ``evaluation.min_signal_fraction``
    (the slice filter of study.csv's metrics)."""

    runs: dict[str, dict]
    min_signal_fraction: float
