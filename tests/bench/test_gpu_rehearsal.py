"""The CPU rehearsal of ``benchmarks/gpu/run.sh``: the script the lent GPU machine runs, started
here in a fresh venv that holds only that machine's package set (no nibabel, no Snakemake, no
jsonschema, not this package), with the carried wheels installed as run.sh installs them.  On the
CPU at a tiny size it must exit 0 and write every gpu-check row, Table 1, Figure 2 and the packed
results; the rows only CUDA can measure are NaN and say "no CUDA".
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GPU = REPO / "benchmarks" / "gpu"
TINY_ARGS = '--cpu-size 64 --model-json {"base_channels":4,"depth":2} --volume-shape 64 64 8'


def _requirements(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def machine_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with exactly benchmarks/gpu/machine-packages.txt installed."""
    venv = tmp_path_factory.mktemp("machine") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    packages = _requirements(GPU / "machine-packages.txt")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *packages],
        check=True,
        timeout=900,
    )
    return python


def test_machine_venv_lacks_what_the_gpu_machine_lacks(machine_python: Path) -> None:
    probe = "import importlib.util as u; print([m for m in {} if u.find_spec(m)])"
    missing = ["nibabel", "snakemake", "jsonschema", "pytorch_msssim", "ssimrecon"]
    out = subprocess.run(
        [str(machine_python), "-c", probe.format(missing)],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_run_sh_rehearsal_writes_every_row_and_the_demo_results(
    machine_python: Path, tmp_path: Path
) -> None:
    wheels = tmp_path / "whl"
    fetched = subprocess.run(
        ["bash", str(GPU / "fetch-wheels.sh"), str(wheels)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fetched.returncode == 0, fetched.stderr[-2000:]
    names = {p.name.split("-")[0].lower() for p in wheels.glob("*.whl")}
    assert len(names) == len(_requirements(GPU / "wheels.txt")), names
    assert "MiB  in all" in fetched.stdout

    out, demo = tmp_path / "out", tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SSIMRECON_"))}
    env.update(
        PYTHON=str(machine_python),
        OUT=str(out),
        CUDA_VISIBLE_DEVICES="",
        GPU_CHECK_WHEELS=str(wheels),
        GPU_CHECK_SITE=str(tmp_path / "site"),
        GPU_CHECK_ARGS=TINY_ARGS,
        GPU_DEMO_OVERLAY="benchmarks/gpu/config.cpu-rehearsal.yaml",
        GPU_DEMO_RESULTS=str(demo),
        GPU_DEMO_TRAIN_S="120",
    )
    proc = subprocess.run(
        ["bash", str(GPU / "run.sh")],
        cwd=tmp_path,  # run.sh finds the repository itself
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, log
    assert "CUDA False" in proc.stdout and "no CUDA device on this machine" in proc.stdout

    with open(out / "gpu.csv", newline="") as handle:
        rows = {r["metric"]: r for r in csv.DictReader(handle)}
    notes = {r["metric"]: r["note"] for r in json.loads((out / "gpu.json").read_text())["summary"]}
    expected = {
        *(f"gpu_train_{v}_slices_per_s" for v in ("fp32", "bf16_cl", "bf16_cl_torchnorm")),
        *(f"gpu_train_{v}_batch16_slices_per_s" for v in ("bf16_cl", "bf16_cl_torchnorm")),
        *(f"gpu_train_{v}_slices_per_s" for v in ("bf16_cl_compile", "bf16_cl_compile_torchnorm")),
        "gpu_train_best_slices_per_s",
        "gpu_train_mfu",
        "gpu_peak_memory_gib",
        "gpu_host_syncs_per_step",
        "gpu_eval_slices_per_s",
        "gpu_loader_slices_per_s",
        "gpu_loader_vs_consumption",
        "gpu_ssim_fwd_bwd_ms",
        "gpu_pytorch_msssim_fwd_bwd_ms",
        "gpu_ssim_speedup_vs_pytorch_msssim",
        "gpu_paper_run_projected_hours",
        "gpu_check_skipped_rows",
    }
    assert set(rows) == expected
    for metric in ("gpu_train_fp32_slices_per_s", "gpu_loader_slices_per_s", "gpu_ssim_fwd_bwd_ms"):
        assert float(rows[metric]["value"]) > 0, rows[metric]
    for metric in ("gpu_train_bf16_cl_compile_slices_per_s", "gpu_paper_run_projected_hours"):
        assert math.isnan(float(rows[metric]["value"])) and notes[metric] == "no CUDA"

    summary = json.loads((out / "gpu_demo.json").read_text())
    assert "error" not in summary and summary["device"] == "CPU"
    assert set(summary["training"]) == {"Net-mse", "Net-mse-dssim"}
    for run in summary["training"].values():
        assert run["exit"] == 0 and run["epochs"] == 1 and run["best_epoch"] == 1
    assert "| zero-filled |" in (out / "table1.md").read_text()
    assert (out / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with tarfile.open(out / "gpu-demo.tar.gz") as packed:
        members = packed.getnames()
    assert "demo/table1.csv" in members and "demo/figures/training_curves.png" in members
    assert "demo/models/Net-mse/history.csv" in members
    assert not any(m.endswith((".pt", ".h5", ".nii.gz", ".tar")) for m in members)
    assert (out / "run.log").read_text().count("run.sh: done") == 1
