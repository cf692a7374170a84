"""The metric registry: one entry per reported metric, each computing what its own function does,
with a direction that orders a clean, a mildly and a strongly degraded estimate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.iqa.gmsd import gmsd
from ssimrecon.functional.iqa.haarpsi import haarpsi
from ssimrecon.functional.iqa.hfen import hfen
from ssimrecon.functional.iqa.msssim import ms_ssim
from ssimrecon.functional.iqa.vif import vif
from ssimrecon.functional.metrics import METRICS, batch_metrics
from ssimrecon.functional.regions import head_mask
from ssimrecon.functional.registry import REGISTRY, metric_values
from tests.helpers.iqa import mni_slices

NEW = {"haarpsi": haarpsi, "vif": vif, "gmsd": gmsd, "ms_ssim": ms_ssim, "hfen": hfen}


def _estimates() -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    ref, L = mni_slices((80, 100))
    rng = np.random.default_rng(3)
    noise = 0.01 * L * rng.standard_normal(ref.shape)
    mild = gaussian_filter(ref, (0, 0.7, 0.7)) + noise
    strong = gaussian_filter(ref, (0, 2.0, 2.0)) + 3 * noise
    return ref, {"mild": mild, "strong": strong}, L


def test_registry_lists_the_paper_metrics_and_the_new_judges() -> None:
    assert list(REGISTRY) == [*METRICS, "haarpsi", "vif", "gmsd", "ms_ssim", "hfen"]
    for name, metric in REGISTRY.items():
        assert metric.name == name and metric.label and isinstance(metric.higher_is_better, bool)
        assert metric.region_rule in ("pixels", "bounding box")
    assert REGISTRY["psnr"].unit == "dB" and all(REGISTRY[n].unit == "" for n in NEW)
    assert REGISTRY["haarpsi"].label == "HaarPSI (C = 5, alpha = 4.9)"
    assert [n for n, m in REGISTRY.items() if m.region_rule == "bounding box"] == [
        "haarpsi",
        "vif",
        "gmsd",
        "ms_ssim",
    ]
    with pytest.raises(TypeError):
        REGISTRY["x"] = REGISTRY["ssim"]  # type: ignore[index]


@pytest.mark.parametrize("in_head", [False, True], ids=["frame", "head"])
def test_each_entry_computes_its_function(in_head: bool) -> None:
    ref, estimates, L = _estimates()
    est = estimates["mild"]
    region = head_mask(ref, L) if in_head else None
    paper = batch_metrics(ref, est, L, region)
    values = metric_values(ref, est, L, region)
    assert list(values) == list(REGISTRY)
    for name, metric in REGISTRY.items():
        expected = paper[name] if name in METRICS else NEW[name](ref, est, L, region)
        got = metric.compute(ref, est, L, region)
        assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (2,)
        np.testing.assert_array_equal(got, expected, err_msg=name)
        np.testing.assert_array_equal(values[name], expected, err_msg=name)
    subset = metric_values(ref, est, L, region, names=["hfen", "psnr"])
    assert list(subset) == ["hfen", "psnr"]
    np.testing.assert_array_equal(subset["psnr"], paper["psnr"])


def test_directions_order_clean_mild_strong() -> None:
    ref, estimates, L = _estimates()
    clean = metric_values(ref, ref.copy(), L)
    mild = metric_values(ref, estimates["mild"], L)
    strong = metric_values(ref, estimates["strong"], L)
    for name, metric in REGISTRY.items():
        sign = 1.0 if metric.higher_is_better else -1.0
        assert np.all(sign * clean[name] > sign * mild[name]), name
        assert np.all(sign * mild[name] > sign * strong[name]), name


def test_unknown_metric_is_named() -> None:
    ref, estimates, L = _estimates()
    with pytest.raises(SsimreconError, match="unknown metric 'fsim'; known: ssim, psnr"):
        metric_values(ref, estimates["mild"], L, names=["ssim", "fsim"])
