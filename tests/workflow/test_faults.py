"""Surviving faults locally: a killed training resumes, a killed shard job leaves nothing
accepted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import Workspace, planned_jobs

pytestmark = pytest.mark.workflow


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"snakemake ended before {what}:\n{out[-4000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _pids_of(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


def _start(ws: Workspace, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args],
        cwd=ws.root,
        env=ws.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _saved_epoch(state: Path) -> int:
    try:
        return int(torch.load(state, weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - the file may be mid-rename while polled
        return -1


def test_training_killed_with_sigkill_is_retried_and_resumes(workspace: Workspace) -> None:
    workspace.config["networks"].pop("Net-mse-dssim")
    workspace.write_config({"training": {"epochs": 8}})
    # The data stages up to the split checkpoint first, so the run below is mostly training.
    workspace.snakemake("--cores", "2", "--until", "split")
    state = workspace.results / "state" / "Net-mse" / "last.pt"
    proc = _start(workspace, "--cores", "2", "--retries", "1")
    try:
        _wait_for(
            lambda: state.exists() and _saved_epoch(state) >= 1, 300, "an epoch checkpoint", proc
        )
        killed = _pids_of("ssimrecon train --network Net-mse")
        assert killed, "training process not found"
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(30)
    assert proc.returncode == 0, out[-4000:]
    log = (workspace.results / "logs" / "train" / "Net-mse.log").read_text()
    resumed = re.findall(r"resuming Net-mse from epoch (\d+)", log)
    assert resumed, log[-3000:]
    assert int(resumed[-1]) >= 1
    assert planned_jobs(workspace) == {}


def test_shard_job_killed_mid_run_is_not_accepted(workspace: Workspace) -> None:
    workspace.snakemake("--cores", "1", "--until", "split")
    subject = sorted(p.name for p in (workspace.results / "nifti").rglob("*.nii.gz"))[0].split("-")[
        0
    ]
    target = f"results/{workspace.config['experiment']}/shards/{subject}.h5"
    incomplete = workspace.root / ".snakemake" / "incomplete"
    proc = _start(workspace, "--cores", "1", target)
    try:
        _wait_for(
            lambda: (
                incomplete.exists() and any(incomplete.iterdir()) and _pids_of("ssimrecon shard")
            ),
            120,
            "the shard job to start",
            proc,
        )
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    shard = workspace.root / target
    # Whatever a killed writer left, the final path holds either nothing or a file Snakemake
    # distrusts.
    if not shard.exists():
        shard.parent.mkdir(parents=True, exist_ok=True)
        shard.write_bytes(b"\x89HDF\r\n\x1a\n half-written")
    # A hard kill leaves Snakemake's lock behind; a user would unlock the same way.
    workspace.snakemake("--unlock", "--cores", "1")
    dry = workspace.snakemake("--dry-run", "--cores", "1", target, check=False)
    text = dry.stdout + dry.stderr
    assert "incomplete" in text.lower(), text[-3000:]
    workspace.snakemake("--cores", "1", "--rerun-incomplete", target)
    from ssimrecon.kspace.shards import validate_shard

    validate_shard(shard)
