"""figures/study.png: the lines are seed means with Student-t intervals; the MSE-only reference."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ssimrecon.cli import main
from ssimrecon.errors import SsimreconError
from ssimrecon.plots.study_figure import PANELS, REGIONS, draw_study, plot_study, seed_interval


def _study() -> pd.DataFrame:
    """study.csv-like rows: Net-mse-dssim at 3 weights x 2 accelerations x 3 seeds, Net-mse
    (unswept) at 2 accelerations x 3 seeds; metrics from a fixed random draw."""
    rng = np.random.default_rng(4)
    rows = []
    for r in (4.0, 10.0):
        for seed in (0, 1, 2):
            for weight in (0.01, 0.1, 1.0):
                rows.append(("Net-mse-dssim", f"d{weight}_R{r:g}", "dssim", weight, r, seed))
            rows.append(("Net-mse", f"m_R{r:g}", "", 0.0, r, seed))
    frame = pd.DataFrame(
        rows, columns=["network", "condition", "swept", "w_dssim", "acceleration", "seed"]
    )
    for metric, _ in PANELS:
        for region in ("frame", "head"):
            column = f"{metric}_{region}"
            frame[column] = rng.normal(30 if metric == "psnr" else 0.8, 0.5, len(frame))
            # one difference per condition (study-table repeats it on each seed's row)
            diff = frame.groupby("condition")[column].transform(lambda v: v.mean() - 0.8)
            diff[frame["swept"] == ""] = np.nan  # the baseline's own condition
            frame[f"diff_{column}"] = diff
            frame[f"diff_{column}_low"] = diff - 0.1
            frame[f"diff_{column}_high"] = diff + 0.2
    return frame


def test_seed_interval_is_the_student_t_interval() -> None:
    values = pd.Series([0.81, 0.84, 0.80, np.nan])
    mean, half = seed_interval(values)
    low, high = stats.t.interval(0.95, 2, loc=values.mean(), scale=stats.sem(values.dropna()))
    assert mean == pytest.approx((low + high) / 2) and half == pytest.approx((high - low) / 2)
    assert np.isnan(seed_interval(pd.Series([0.8]))[1])


def test_lines_are_seed_means_per_acceleration_with_the_reference(tmp_path: Path) -> None:
    study = _study()
    fig = draw_study(study)
    ax = fig.axes[1]  # whole frame, PSNR
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    for r in (4.0, 10.0):
        line = lines[f"Net-mse-dssim, R={r:g}"]
        rows = study[(study["network"] == "Net-mse-dssim") & (study["acceleration"] == r)]
        expected = rows.groupby("w_dssim")["psnr_frame"].mean()
        np.testing.assert_allclose(line.get_xdata(), expected.index)
        np.testing.assert_allclose(line.get_ydata(), expected.to_numpy())
        reference = lines[f"Net-mse, R={r:g} (reference)"]
        mse = study[(study["network"] == "Net-mse") & (study["acceleration"] == r)]
        assert reference.get_ydata()[0] == pytest.approx(mse["psnr_frame"].mean())
    assert len(ax.collections) == 2  # one shaded interval per acceleration
    assert "mean over 3 seed(s)" in fig.texts[0].get_text()
    csv, png = tmp_path / "study.csv", tmp_path / "figures" / "study.png"
    study.to_csv(csv, index=False)
    assert main(["study-figure", "--study", str(csv), "--output", str(png), "--dpi", "40"]) == 0
    assert mpimg.imread(png).std() > 0.05


def test_a_study_without_a_swept_weight_is_refused() -> None:
    study = _study()
    with pytest.raises(SsimreconError, match="no run with a swept loss weight"):
        draw_study(study[study["swept"] == ""])
    with pytest.raises(SsimreconError, match="lacks column 'diff_hfen_head_low'.*study-table"):
        draw_study(study.drop(columns=["diff_hfen_head_low"]))


def test_new_judges_and_the_difference_to_the_baseline_with_its_interval() -> None:
    study = _study()
    fig = draw_study(study)
    grid = np.array(fig.axes).reshape(2 * len(REGIONS), len(PANELS))
    names = [m for m, _ in PANELS]
    assert {"haarpsi", "vif", "gmsd", "ms_ssim", "hfen"} <= set(names)
    j = names.index("haarpsi")
    values, below = grid[1][j], grid[len(REGIONS) + 1][j]  # head mask: values, difference
    assert values.get_title() == "HaarPSI ↑, head mask"
    assert below.get_title() == "HaarPSI ↑ - Net-mse, head mask"
    for r, container in zip((4.0, 10.0), below.containers):
        rows = study[(study["network"] == "Net-mse-dssim") & (study["acceleration"] == r)]
        expected = rows.groupby("w_dssim")[["diff_haarpsi_head", "diff_haarpsi_head_high"]].first()
        line, _, (bars,) = container.lines
        np.testing.assert_allclose(line.get_xdata(), expected.index)
        np.testing.assert_allclose(line.get_ydata(), expected["diff_haarpsi_head"])
        tops = [segment[1][1] for segment in bars.get_segments()]
        np.testing.assert_allclose(tops, expected["diff_haarpsi_head_high"])


def test_a_metric_nan_on_every_run_is_drawn_as_not_scored(tmp_path: Path) -> None:
    """VIF on frames below its 41 pixels (the tiny workflow's 16x32): NaN everywhere, one weight."""
    study = _study()
    study = study[(study["w_dssim"] == 0.1) | (study["swept"] == "")]
    nan = [c for c in study.columns if "vif" in c]
    study = study.assign(**{c: np.nan for c in nan})
    fig = draw_study(study)
    grid = np.array(fig.axes).reshape(2 * len(REGIONS), len(PANELS))
    vif = grid[0][[m for m, _ in PANELS].index("vif")]
    assert [t.get_text() for t in vif.texts] == ["not scored (NaN)"]
    assert vif.get_xscale() == "linear" and grid[0][0].get_xscale() == "log"
    plot_study(study, tmp_path / "study.png", dpi=40)
    assert (tmp_path / "study.png").stat().st_size > 1000
