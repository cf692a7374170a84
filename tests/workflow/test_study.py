"""A study end to end on the tiny data: one job per run, its aggregates, and incremental plans
(Snakemake's own dry run) when a weight or a seed is added; without a study the plan is the
paper's."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ssimrecon.nn.bundle import load_model_bundle
from tests.helpers.plans import planned_jobs, planned_wildcards
from tests.helpers.workspace import REPO, TinySource, Workspace, make_workspace

pytestmark = pytest.mark.workflow

#: 2 seeds x 2 accelerations x (Net-mse + Net-mse-dssim at one weight) = 8 runs
TINY_STUDY = {"seeds": [0, 1], "accelerations": [4, 2], "sweep": {"dssim": [0.1]}}
#: what follows a new set of runs: their seed averages, study.csv, the figure, Table 1 per R
AGGREGATES = {"study_table": 1, "study_figure": 1, "study_table1": 2, "all": 1}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, tiny_source: TinySource) -> Workspace:
    ws = make_workspace(tmp_path_factory.mktemp("study") / "ws", tiny_source, {"study": TINY_STUDY})
    ws.snakemake("--cores", "2")
    return ws


def test_without_a_study_the_paper_plan_is_job_for_job_the_same(
    tmp_path: Path, tiny_source: TinySource
) -> None:
    """config.yaml as shipped: the plan of the two-network paper experiment before studies
    existed (checkpoint rules expand later)."""
    ws = make_workspace(tmp_path / "ws", tiny_source)
    ws.config = yaml.safe_load((REPO / "config.yaml").read_text())
    ws.write_config()
    assert planned_jobs(ws) == Counter(
        download=1,
        extract=1,
        qc=1,
        split=1,
        mask=1,
        train=2,
        evaluate=4,
        evaluate_zero_filled=2,
        curves=1,
        figure2=1,
        table=2,
        all=1,
    )


def test_a_study_trains_each_run_once_and_aggregates_them(study: Workspace) -> None:
    res = study.results
    table = pd.read_csv(res / "study.csv", keep_default_na=False, na_values=[""])
    expected = sorted(
        f"{net}_R{r}_seed{s}"
        for net in ("Net-mse", "Net-mse-dssim_dssim0.1")
        for r in (4, 2)
        for s in (0, 1)
    )
    assert sorted(table["run"]) == expected
    assert np.isfinite(table[["ssim_frame", "psnr_head", "fastmri_nmse"]].to_numpy()).all()
    # the new judges (VIF: NaN on 16x32 frames, below its 41 pixels) and each condition's
    # difference to Net-mse's at its acceleration, with a hierarchical bootstrap interval
    judges = ["haarpsi_head", "gmsd_frame", "ms_ssim_head", "hfen_frame"]
    assert np.isfinite(table[judges].to_numpy()).all() and table["vif_head"].isna().all()
    dssim = table[table["network"] == "Net-mse-dssim"]
    low, mid, high = (dssim[f"diff_hfen_head{s}"] for s in ("_low", "", "_high"))
    assert ((low <= mid) & (mid <= high)).all() and (low < high).all()
    assert table.loc[table["network"] == "Net-mse", "diff_hfen_head"].isna().all()
    # one shard set for both accelerations, one mask each
    split = pd.read_csv(res / "split.csv")
    assert len(list((res / "shards").glob("*.h5"))) == len(split)
    assert sorted(p.name for p in (res / "masks").iterdir()) == ["R2.npz", "R4.npz"]
    for _, row in table.iterrows():
        _, bundle = load_model_bundle(res / "models" / row["run"] / "best.pt")
        assert bundle["extra"]["training"]["seed"] == row["seed"]
        assert bundle["extra"]["loss_terms"]["mse"] == 1.0
        assert bundle["extra"]["loss_terms"].get("dssim", 0.0) == row["w_dssim"]
        mask = np.load(res / "masks" / f"R{row['acceleration']:g}.npz")["mask"]
        assert torch.equal(bundle["mask"], torch.from_numpy(mask))
    # R = 2 samples twice as much as R = 4: zero-filled scores better at R = 2
    zero = {r: pd.read_csv(res / "metrics" / "test" / f"zero-filled_R{r}.csv") for r in (2, 4)}
    assert zero[2]["ssim"].mean() > zero[4]["ssim"].mean()
    for r in (2, 4):
        text = (res / "study" / f"table1_R{r}.md").read_text()
        assert "trained 2 times (study.seeds)" in text
        assert "## Primary endpoint (confirmatory)" in text and "hierarchical" in text
        tidy = pd.read_csv(res / "study" / f"table1_R{r}.csv")
        assert list(dict.fromkeys(tidy["method"])) == [
            f"zero-filled_R{r}",
            f"Net-mse_R{r}",
            f"Net-mse-dssim_dssim0.1_R{r}",
        ]
        # Table 1's mean of a condition is the mean over its seeds of study.csv's value
        row = tidy[
            (tidy["method"] == f"Net-mse_R{r}")
            & (tidy["convention"] == "paper")
            & (tidy["region"] == "head")
            & (tidy["slices"] == "filtered")
            & (tidy["metric"] == "ssim")
        ]
        runs = table[(table["network"] == "Net-mse") & (table["acceleration"] == r)]
        assert float(row["mean"].iloc[0]) == pytest.approx(runs["ssim_head"].mean(), rel=1e-9)
    assert (res / "figures" / "study.png").stat().st_size > 10_000


def test_the_report_of_a_study_shows_its_figure(study: Workspace, tmp_path: Path) -> None:
    ws = study.clone(tmp_path / "ws")
    ws.snakemake("--cores", "1", "--report", "report.html")
    text = (ws.root / "report.html").read_text()
    assert "study.csv" in text and "table1_R2.html" in text and "A study: every network" in text


def test_adding_a_weight_plans_only_its_runs_and_the_aggregates(
    study: Workspace, tmp_path: Path
) -> None:
    ws = study.clone(tmp_path / "ws")
    ws.write_config({"study": {"sweep": {"dssim": [0.1, 0.5]}}})
    new = sorted(f"Net-mse-dssim_dssim0.5_R{r}_seed{s}" for r in (4, 2) for s in (0, 1))
    assert planned_jobs(ws) == Counter(train=4, evaluate=4, seed_average=2, **AGGREGATES)
    assert planned_wildcards(ws, "train", "run") == new
    assert planned_wildcards(ws, "evaluate", "run") == new


def test_adding_a_seed_plans_only_its_runs_and_the_aggregates(
    study: Workspace, tmp_path: Path
) -> None:
    ws = study.clone(tmp_path / "ws")
    ws.write_config({"study": {"seeds": [0, 1, 2]}})
    jobs = planned_jobs(ws)
    # every condition (2 networks x 2 accelerations) gains one run and a new seed average
    assert jobs == Counter(train=4, evaluate=4, seed_average=4, **AGGREGATES)
    assert all(run.endswith("_seed2") for run in planned_wildcards(ws, "train", "run"))
