"""``ssimrecon_bench.gpu_demo``: the demo pipeline without Snakemake, with its wall-clock budget.

The budget is the part the rehearsal of run.sh does not reach (its one epoch ends first): here a
run of 1000 epochs is stopped by SIGTERM after a few, keeps the best-validation ``best.pt`` and
still reaches Table 1; the commands it runs are the workflow's own, with the rules' JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ssimrecon_bench import gpu_demo

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ["config.demo.yaml", "benchmarks/gpu/config.gpu-demo.yaml"]
REHEARSAL = "benchmarks/gpu/config.cpu-rehearsal.yaml"


def test_argv_of_writes_flags_values_and_lists() -> None:
    argv = gpu_demo.argv_of({"shards": [Path("a.h5"), "b.h5"], "zero-filled": True, "out": 3})
    assert argv == ["--shards", "a.h5", "b.h5", "--zero-filled", "--out", "3"]


def test_a_run_past_its_budget_is_stopped_and_still_reaches_table1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    many_epochs = tmp_path / "many-epochs.yaml"
    many_epochs.write_text("training:\n  epochs: 1000\n")
    monkeypatch.chdir(REPO)
    results = tmp_path / "gpu-demo"
    argv = ["--results", str(results), "--train-s", "10", "--jobs", "2", "--threads", "1"]
    code = gpu_demo.main([*argv, "--overlay", *OVERLAYS, REHEARSAL, str(many_epochs)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((results / "gpu_demo.json").read_text())
    assert set(summary["training"]) == {"Net-mse", "Net-mse-dssim"}  # trained at once
    for name, run in summary["training"].items():
        assert run["stopped_by_budget"] and run["exit"] == gpu_demo.STOPPED_BY_SIGTERM, name
        history = pd.read_csv(results / "models" / name / "history.csv")
        assert 1 <= run["epochs"] == len(history) < 1000
        assert run["best_epoch"] == int(history.loc[history["val_loss"].idxmin(), "epoch"])
        assert "SIGTERM" in (results / "logs" / "train" / f"{name}.log").read_text()
    table = pd.read_csv(results / "table1.csv")
    assert set(table["method"]) == {"zero-filled", "Net-mse", "Net-mse-dssim"}
    assert (results / "figures" / "figure2.png").stat().st_size > 0


def test_a_failing_stage_is_named_with_its_log(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    results = tmp_path / "broken"
    pipe = gpu_demo.Pipeline({}, results)
    with pytest.raises(gpu_demo.SsimreconError, match=r"split: exit 2; .*logs/split\.log"):
        pipe.run("split", "split", {"subjects": tmp_path / "missing.csv", "output": "x.csv"})
