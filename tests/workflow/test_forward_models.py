"""The tiny workflow to Table 1 under each forward model, and a study with the physics axes
(forward model x data consistency): its plan, its names, study.csv's effective acceleration."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from ssimrecon.kspace.effective import effective_acceleration
from ssimrecon.nn.bundle import load_model_bundle
from tests.helpers.plans import planned_jobs, planned_wildcards
from tests.helpers.workspace import TinySource, make_workspace

pytestmark = pytest.mark.workflow

#: one short epoch: the test is about the plumbing, not the networks' quality
SHORT = {"training": {"epochs": 1}}


def _mask(res: Path, label: str = "4") -> np.ndarray:
    return np.load(res / "masks" / f"R{label}.npz")["mask"]


@pytest.mark.parametrize(
    ("model", "dc"), [("magnitude", False), ("complex", False), ("multicoil", True)]
)
def test_each_forward_model_runs_to_table1(
    tmp_path: Path, tiny_source: TinySource, model: str, dc: bool
) -> None:
    overrides = {
        **SHORT,
        "preprocessing": {"forward_model": model, "coils": 4},
        "model": {"data_consistency": dc},
    }
    ws = make_workspace(tmp_path / "ws", tiny_source, overrides)
    ws.snakemake("--cores", "2", "results/tiny/table1.md")
    res = ws.results
    mask = _mask(res)
    nominal = mask.size / mask.sum()
    effective = effective_acceleration(mask, model == "magnitude")
    text = (res / "table1.md").read_text()
    assert f"Acquisition: forward model {model}" in text
    assert f"R = {nominal:.2f} nominal, effective R = {effective:.2f}" in text
    assert (effective < nominal - 0.5) == (model == "magnitude")
    shard = next((res / "shards").glob("*.h5"))  # the default experiment's paths
    with h5py.File(shard) as f:
        assert ("coil_kspace" in f) == (model == "multicoil")
        assert ("phase" in f) == (model == "complex")
    for network in ws.config["networks"]:
        unet, bundle = load_model_bundle(res / "models" / network / "best.pt")
        assert bundle["preprocessing"]["forward_model"] == model
        assert bundle["data_consistency"] is dc
        assert unet.model_config["in_channels"] == (1 if model == "magnitude" else 2)
    table = pd.read_csv(res / "table1.csv")
    frame = table[(table["convention"] == "paper") & (table["metric"] == "ssim")]
    assert np.isfinite(frame["mean"]).all() and len(set(table["method"])) == 3


#: the physics axes on the tiny data: 1 seed, 1 acceleration, Net-mse and Net-mse-dssim
PHYSICS_STUDY = {
    "seeds": [0],
    "accelerations": [4],
    "sweep": {"dssim": [0.1]},
    "forward_models": ["magnitude", "multicoil"],
    "data_consistency": [False, True],
}


def test_a_physics_study_plans_one_run_per_forward_model_and_dc(
    tmp_path: Path, tiny_source: TinySource
) -> None:
    ws = make_workspace(tmp_path / "ws", tiny_source, {"study": PHYSICS_STUDY})
    expected = sorted(
        f"{net}_R4{model}{dc}_seed0"
        for net in ("Net-mse", "Net-mse-dssim_dssim0.1")
        for model in ("", "_multicoil")
        for dc in ("", "_dc")
    )
    assert planned_wildcards(ws, "train", "run") == expected
    jobs = planned_jobs(ws)
    # one table per forward model (data consistency is a network setting: same data)
    assert jobs["train"] == 8 and jobs["study_table1"] == 2 and jobs["mask"] == 1
    assert planned_wildcards(ws, "study_table1", "table_key") == ["R4", "R4_multicoil"]
    # without the physics axes the study is today's, name for name
    plain = make_workspace(tmp_path / "plain", tiny_source, {"study": {**PHYSICS_STUDY}})
    plain.config["study"].pop("forward_models")
    plain.config["study"].pop("data_consistency")
    plain.write_config()
    assert planned_wildcards(plain, "train", "run") == [
        "Net-mse-dssim_dssim0.1_R4_seed0",
        "Net-mse_R4_seed0",
    ]
    assert Counter(planned_jobs(plain))["train"] == 2


def test_a_physics_study_reports_effective_acceleration_per_run(
    tmp_path: Path, tiny_source: TinySource
) -> None:
    study = {
        **PHYSICS_STUDY,
        "forward_models": ["magnitude", "complex"],
        "data_consistency": [True],
    }
    ws = make_workspace(tmp_path / "ws", tiny_source, {**SHORT, "study": study})
    ws.snakemake("--cores", "2")
    res = ws.results
    table = pd.read_csv(res / "study.csv")
    assert sorted(table["run"]) == sorted(
        f"{net}_R4{model}_dc_seed0"
        for net in ("Net-mse", "Net-mse-dssim_dssim0.1")
        for model in ("", "_complex")
    )
    mask = _mask(res)
    for _, row in table.iterrows():
        hermitian = row["forward_model"] == "magnitude"
        assert row["effective_acceleration"] == pytest.approx(
            effective_acceleration(mask, hermitian)
        )
        assert bool(row["data_consistency"]) is True
    # the dssim-minus-mse difference is taken within each forward model
    dssim = table[table["network"] == "Net-mse-dssim"]
    assert np.isfinite(dssim["diff_ssim_head"]).all()
    assert table.loc[table["network"] == "Net-mse", "diff_ssim_head"].isna().all()
    assert sorted(p.name for p in (res / "shards").iterdir()) == ["complex", "magnitude"]
    for key in ("R4", "R4_complex"):
        assert "effective R" in (res / "study" / f"table1_{key}.md").read_text()
    assert (res / "figures" / "study.png").stat().st_size > 10_000
