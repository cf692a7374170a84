"""study.csv rows and seed averages, from real evaluations of phantom shards under two masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.evaluate import Evaluation, evaluate_shards
from ssimrecon.evaluation.statistics import hierarchical_interval
from ssimrecon.evaluation.study_results import (
    STUDY_COLUMNS,
    seed_average,
    seed_average_volumes,
    study_table,
)
from ssimrecon.evaluation.table import Primary, TableRules, build_table1
from ssimrecon.evaluation.table_render import table1_markdown
from ssimrecon.functional.registry import REGISTRY
from ssimrecon.kspace.mask import variable_density_mask
from tests.helpers.shards import write_mask_file, write_test_shards

THRESHOLD = 0.05
PRIMARY = Primary("ssim", "head", "filtered")
PLAN = {"baseline": "Net-mse", "primary": PRIMARY, "resamples": 2000, "seed": 3}


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Evaluation]:
    """Zero-filled metrics of 6 phantom subjects under four R = 4 masks (stand-ins for two seeds of
    two conditions)."""
    folder = tmp_path_factory.mktemp("study")
    shards = write_test_shards(folder, n_subjects=6, n_slices=4, empty=1)
    out = {}
    for seed in (0, 1, 2, 3):
        mask = variable_density_mask((32, 32), 4.0, center_size=4, seed=seed)
        path = write_mask_file(folder / f"mask{seed}.npz", mask, seed=seed)
        out[f"run_seed{seed}"] = evaluate_shards(
            shards,
            method="zero-filled",
            mask_path=path,
            model_path=None,
            min_signal_fraction=THRESHOLD,
        )
    return out


def _runs() -> dict[str, dict]:
    runs = {
        f"run_seed{s}": {
            "condition": "run",
            "network": "Net-mse-dssim",
            "loss": {"mse": 1.0, "dssim": 0.1},
            "acceleration": 4.0,
            "seed": s,
            "swept": ["dssim"],
        }
        for s in (0, 1)
    }
    for s in (2, 3):
        runs[f"run_seed{s}"] = {
            "condition": "base",
            "network": "Net-mse",
            "loss": {"mse": 1.0},
            "acceleration": 4.0,
            "seed": s,
            "swept": [],
        }
    return runs


def test_study_rows_hold_table1_metrics_of_each_run(evaluations: dict[str, Evaluation]) -> None:
    table = study_table(
        _runs(),
        {n: e.slices for n, e in evaluations.items()},
        {n: e.volumes for n, e in evaluations.items()},
        THRESHOLD,
        **PLAN,
    )
    assert list(table.columns) == list(STUDY_COLUMNS) and list(table["run"]) == list(evaluations)
    for _, row in table.iterrows():
        slices = evaluations[row["run"]].slices
        for region in ("frame", "head"):
            kept = slices[(slices["region"] == region) & slices["passes_filter"]]
            assert row[f"ssim_{region}"] == pytest.approx(kept["ssim"].mean(), rel=1e-12)
            per_subject = kept.groupby("subject")["psnr"].mean().mean()
            assert row[f"psnr_{region}_subjects"] == pytest.approx(per_subject, rel=1e-12)
        volumes = evaluations[row["run"]].volumes
        assert row["fastmri_nmse"] == pytest.approx(volumes["nmse"].mean(), rel=1e-12)
        assert row["acceleration"] == 4.0 and row["n_subjects"] == 6
        assert row["n_slices"] == 6 * 3  # the blank slice of each subject fails the filter
        # every registry metric has its columns; VIF needs 41 pixels: NaN on these 32x32 slices
        for metric in REGISTRY:
            assert f"{metric}_head" in table.columns and f"diff_{metric}_head_low" in table.columns
        assert np.isnan(row["vif_frame"]) and np.isfinite(row["haarpsi_frame"])
    first = table.iloc[0]
    assert (first["w_mse"], first["w_dssim"], first["w_edge"], first["w_l1"]) == (1.0, 0.1, 0, 0)
    assert first["swept"] == "dssim"
    assert table.loc[0, "ssim_frame"] != table.loc[1, "ssim_frame"]  # the masks differ
    # the condition's difference to Net-mse's: means over seeds, then subjects; NaN for Net-mse
    for region in ("frame", "head"):
        means = {}
        for name, e in evaluations.items():
            kept = e.slices[(e.slices["region"] == region) & e.slices["passes_filter"]]
            means[name] = kept.groupby("subject")["haarpsi"].mean()
        mine = pd.concat([means["run_seed0"], means["run_seed1"]], axis=1).T
        theirs = pd.concat([means["run_seed2"], means["run_seed3"]], axis=1).T
        expected = hierarchical_interval(mine.to_numpy(), theirs.to_numpy(), 2000, 3)
        got = table.loc[0, [f"diff_haarpsi_{region}{s}" for s in ("", "_low", "_high")]]
        np.testing.assert_allclose(got.to_numpy(float), expected, rtol=1e-12)
        assert expected[0] == pytest.approx(mine.to_numpy().mean() - theirs.to_numpy().mean())
        assert expected[1] < expected[0] < expected[2]
    assert table.loc[2:, "diff_ssim_head"].isna().all()
    assert table.loc[0:1, "diff_ssim_head"].notna().all()
    with pytest.raises(SsimreconError, match="no test metrics for run.*run_seed1"):
        study_table(_runs(), {"run_seed0": evaluations["run_seed0"].slices}, {}, THRESHOLD, **PLAN)


def test_seed_average_is_the_slice_by_slice_mean_and_table1_says_so(
    evaluations: dict[str, Evaluation],
) -> None:
    a, b = (evaluations[f"run_seed{s}"] for s in (0, 1))
    mean = seed_average([a.slices, b.slices.sample(frac=1.0, random_state=0)])  # any row order
    keys = ["subject", "slice", "region"]
    expected = (
        a.slices.set_index(keys)[["ssim", "psnr"]].add(b.slices.set_index(keys)[["ssim", "psnr"]])
        / 2
    )
    got = mean.set_index(keys).loc[expected.index]
    np.testing.assert_allclose(got[["ssim", "psnr"]], expected, rtol=1e-12)
    assert got["passes_filter"].equals(
        a.slices.set_index(keys).loc[expected.index, "passes_filter"]
    )
    volumes = seed_average_volumes([a.volumes, b.volumes])
    np.testing.assert_allclose(volumes["ssim"], (a.volumes["ssim"] + b.volumes["ssim"]) / 2)
    rules = TableRules("test", "one", THRESHOLD, 99.5, 2, PRIMARY, 100, 0)
    table = build_table1({"one": mean}, {"one": volumes}, rules)
    text = table1_markdown(table, rules)
    assert "trained 2 times (study.seeds)" in text and "averaged over the 2 seeds" in text
    single = TableRules("test", "one", THRESHOLD, 99.5, 1, PRIMARY, 100, 0)
    assert "study.seeds" not in table1_markdown(table, single)


def test_seed_average_refuses_runs_on_other_slices(evaluations: dict[str, Evaluation]) -> None:
    a = evaluations["run_seed0"].slices
    fewer = a[a["subject"] != a["subject"].iloc[0]]
    with pytest.raises(SsimreconError, match="per-slice metrics 2 covers other rows"):
        seed_average([a, fewer])
    refiltered = a.assign(passes_filter=~a["passes_filter"])
    with pytest.raises(SsimreconError, match="other rows"):
        seed_average([a, refiltered])
    with pytest.raises(SsimreconError, match="no per-volume metrics"):
        seed_average_volumes([])
    assert isinstance(seed_average([a]), pd.DataFrame)
