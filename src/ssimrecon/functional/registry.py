"""One list of the per-slice metrics the table, the study and reconstruct report.

Each :class:`Metric` computes ``compute(ref, est, data_range, region=None)`` on (S,H,W) numpy
stacks on the scaled intensity axis (``data_range`` L: the scaled reference volume's maximum;
``region`` (S,H,W) bool or None for the whole frame) and returns float64 (S,), NaN where the slice
is unscored in the region.  ``region_rule`` says how a region restricts it: ``"pixels"`` (the
region's pixels, as :func:`ssimrecon.functional.metrics.batch_metrics`) or ``"bounding box"`` (the
metric on the crop to the region's grown bounding box, :mod:`ssimrecon.functional.iqa.scoring`).
Definitions: docs/definitions.md, "Metrics" and "Perceptual and edge metrics".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.iqa.gmsd import gmsd
from ssimrecon.functional.iqa.haarpsi import MEDICAL_ALPHA, MEDICAL_C, haarpsi
from ssimrecon.functional.iqa.hfen import hfen
from ssimrecon.functional.iqa.msssim import ms_ssim
from ssimrecon.functional.iqa.vif import vif
from ssimrecon.functional.metrics import METRICS, batch_metrics

SliceMetric = Callable[[np.ndarray, np.ndarray, float, np.ndarray | None], np.ndarray]

__all__ = ["Metric", "REGISTRY", "metric_values"]


@dataclass(frozen=True)
class Metric:
    """A per-slice metric: its function, direction, unit ("" when dimensionless), label for tables
    and figures, and how a region restricts it."""

    name: str
    compute: SliceMetric
    higher_is_better: bool
    unit: str
    label: str
    region_rule: str


def _paper_metric(
    key: str, ref: np.ndarray, est: np.ndarray, data_range: float, region: np.ndarray | None = None
) -> np.ndarray:
    """One of :data:`ssimrecon.functional.metrics.METRICS` from ``batch_metrics``."""
    return batch_metrics(ref, est, data_range, region)[key]


def _paper(key: str, higher_is_better: bool, unit: str, label: str) -> Metric:
    return Metric(
        key, functools.partial(_paper_metric, key), higher_is_better, unit, label, "pixels"
    )


REGISTRY: Mapping[str, Metric] = MappingProxyType(
    {
        m.name: m
        for m in (
            _paper("ssim", True, "", "SSIM"),
            _paper("psnr", True, "dB", "PSNR"),
            _paper("rel_error", False, "", "relative error"),
            _paper("mse", False, "", "MSE"),
            Metric(
                "haarpsi",
                haarpsi,
                True,
                "",
                f"HaarPSI (C = {MEDICAL_C:g}, alpha = {MEDICAL_ALPHA:g})",
                "bounding box",
            ),
            Metric("vif", vif, True, "", "VIF (pixel domain)", "bounding box"),
            Metric("gmsd", gmsd, False, "", "GMSD", "bounding box"),
            Metric("ms_ssim", ms_ssim, True, "", "MS-SSIM", "bounding box"),
            Metric("hfen", hfen, False, "", "HFEN", "pixels"),
        )
    }
)


def metric_values(
    ref: np.ndarray,
    est: np.ndarray,
    data_range: float,
    region: np.ndarray | None = None,
    names: Iterable[str] | None = None,
) -> dict[str, np.ndarray]:
    """{name: (S,) float64} for ``names`` (default: every registered metric, in registry order);
    the paper-convention metrics share one ``batch_metrics`` call."""
    names = list(REGISTRY) if names is None else list(names)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise SsimreconError(f"unknown metric {unknown[0]!r}; known: {', '.join(REGISTRY)}")
    paper = batch_metrics(ref, est, data_range, region) if set(names) & set(METRICS) else {}
    return {
        n: paper[n] if n in paper else REGISTRY[n].compute(ref, est, data_range, region)
        for n in names
    }
