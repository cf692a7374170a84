"""Typed settings of the stages whose library functions take plain arguments.

Each dataclass is what one command's ``--config-json`` holds (:func:`ssimrecon.config.sections.
load_settings`); its docstring names the config keys it carries.  Shards use
:class:`ssimrecon.kspace.preprocess.Preprocessing` and training :class:`TrainJob`.  No field has a
default: the defaults live in ``workflow/schemas/config.schema.yaml`` only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from ssimrecon.errors import SsimreconError

__all__ = [
    "DemoArchiveSettings",
    "QcSettings",
    "SplitSettings",
    "MaskSettings",
    "EvaluateSettings",
    "TableSettings",
    "Figure2Settings",
    "StudySettings",
    "TrainSettings",
    "TrainJob",
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
    (how many seeds each network's metrics average: 1, or the length of ``study.seeds``),
    ``evaluation.primary`` ({metric, region, slices}: the primary endpoint) and
    ``evaluation.bootstrap`` ({resamples, seed} of the difference intervals)."""

    baseline: str
    min_signal_fraction: float
    scale_percentile: float
    seeds: int
    primary: dict[str, str]
    bootstrap: dict[str, int]


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
    """A study's runs (``study`` expanded by :func:`ssimrecon.config.runs.expand_runs`: run name
    -> {condition, network, loss, acceleration, seed, swept}) and ``evaluation.min_signal_fraction``
    (the slice filter of study.csv's metrics), ``evaluation.baseline`` (the network whose
    condition at the same acceleration each condition is compared with), ``evaluation.primary``
    and ``evaluation.bootstrap`` (the hierarchical bootstrap's resamples and seed)."""

    runs: dict[str, dict]
    min_signal_fraction: float
    baseline: str
    primary: dict[str, str]
    bootstrap: dict[str, int]


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The ``training:`` config section without ``threads`` (a job resource, not a setting).

    No field has a default: the defaults live in workflow/schemas/config.schema.yaml.  The class
    owns the rules of its values: ``__post_init__`` normalises (``crop`` -> tuple, ``bf16``
    "true"/"false" -> bool) and stops values no run could use (among them a ``batch_size`` that is
    not a multiple of ``gpus``), :meth:`check_crop` the crop against the images;
    :mod:`ssimrecon.config.check` builds it from the config before any job, the CLI with
    :func:`ssimrecon.config.sections.load_settings`. ``crop`` is (H, W) in pixels or None,
    ``crop_focus`` where crops are centred (uniform corners or a foreground pixel:
    :func:`ssimrecon.training.step.crop_batch`); ``lr`` Adam's (peak) learning rate,
    ``lr_schedule`` its course over the steps (:mod:`ssimrecon.training.schedule`);
    ``min_signal_fraction`` the slice filter of training and validation; ``gpus`` the processes
    (one GPU each) that train the run together with the global batch ``batch_size``;
    ``compile`` wraps the U-Net in ``torch.compile``; ``instance_norm`` ('project' or 'torch')
    picks the instance-norm kernel (same maths).
    """

    epochs: int
    batch_size: int
    lr: float
    lr_schedule: str
    seed: int
    crop: tuple[int, int] | None
    crop_focus: str
    num_workers: int
    device: str
    bf16: str | bool
    channels_last: bool
    min_signal_fraction: float
    max_train_batches: int | None
    gpus: int
    compile: bool
    instance_norm: str

    def __post_init__(self) -> None:
        if self.crop is not None:
            object.__setattr__(self, "crop", (int(self.crop[0]), int(self.crop[1])))
        bf16 = self.bf16
        if isinstance(bf16, str) and bf16.lower() in {"true", "false"}:
            object.__setattr__(self, "bf16", bf16.lower() == "true")
        if self.bf16 not in ("auto", True, False):
            raise SsimreconError(f"training.bf16: must be 'auto', true or false, got {bf16!r}")
        if self.instance_norm not in ("project", "torch"):
            raise SsimreconError(
                f"training.instance_norm: must be 'project' or 'torch', got {self.instance_norm!r}"
            )
        for key, minimum in (("epochs", 1), ("batch_size", 1), ("num_workers", 0), ("gpus", 1)):
            if getattr(self, key) < minimum:
                raise SsimreconError(f"training.{key}: must be >= {minimum}")
        if self.batch_size % self.gpus:
            raise SsimreconError(
                f"training.batch_size: {self.batch_size} must be a multiple of training.gpus "
                f"({self.gpus}): the global batch is split evenly across the GPUs"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SsimreconError(f"training.lr: must be a positive number, got {self.lr!r}")
        if self.crop_focus not in ("uniform", "foreground"):  # the schema's enum
            raise SsimreconError(
                f"training.crop_focus: must be uniform or foreground, got {self.crop_focus!r}"
            )
        if self.lr_schedule not in ("constant", "cosine", "onecycle"):  # the schema's enum
            raise SsimreconError(
                "training.lr_schedule: must be constant, cosine or onecycle, got "
                f"{self.lr_schedule!r}"
            )

    def check_crop(self, image_size: Sequence[int], multiple: int) -> None:
        """SsimreconError naming ``training.crop`` unless the crop fits in images of (H, W)
        ``image_size`` and both sides are divisible by ``multiple`` (2**depth: the U-Net pools
        depth times).  The one home of the crop's rule: the config check calls it with
        ``preprocessing.image_size``, the Trainer with its shards' slice size."""
        if self.crop is None:
            return
        if any(c % multiple for c in self.crop) or any(
            c > s for c, s in zip(self.crop, image_size)
        ):
            raise SsimreconError(
                f"training.crop: {list(self.crop)} must fit in image_size {list(image_size)} and "
                f"be divisible by {multiple}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (crop as a list)."""
        out = dataclasses.asdict(self)
        out["crop"] = None if self.crop is None else list(self.crop)
        return out


@dataclasses.dataclass(frozen=True)
class TrainJob:
    """What one training job is handed (``ssimrecon train --config-json``): the network's model
    settings (top-level ``model`` with the network's overrides applied), its ``loss`` terms {term:
    weight} and the ``training`` section."""

    model: dict[str, Any]
    loss: dict[str, float]
    training: TrainSettings
