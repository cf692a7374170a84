"""Surviving faults locally: a killed training resumes, a killed shard job leaves nothing
accepted."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.plans import planned_jobs
from tests.helpers.workspace import Workspace

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


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads'), from /proc/<pid>/task/*/children."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):  # the task ended while we looked
            continue
    return children


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` in the process tree (not ``root`` itself)."""
    found, todo = [], _children(root)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += _children(pid)
    return found


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _stage_pids(root: int, stage: str, network: str | None = None) -> list[int]:
    """PIDs below ``root`` running ``ssimrecon <stage>`` (with ``--network <network>`` if given).

    Only the test's own process tree is searched, so a concurrent test run or a user's training
    on the same machine is never touched. The shell that Snakemake starts (``sh -c "ssimrecon
    ..."``) does not match: the entry point must be the program or the interpreter's script."""
    pids = []
    for pid in _descendants(root):
        argv = _argv(pid)
        entry = next((i for i, a in enumerate(argv[:2]) if Path(a).name == "ssimrecon"), None)
        if entry is None or argv[entry + 1 : entry + 2] != [stage]:
            continue
        if network is not None:
            rest = argv[entry + 2 :]
            if "--network" not in rest or rest[rest.index("--network") + 1 :][:1] != [network]:
                continue
        pids.append(pid)
    return pids


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
    """SIGKILL to the training process (found in this test's own process tree, never by a
    machine-wide name search) makes Snakemake retry the job, which resumes from last.pt.

    Mutation tried (fails this test): ``_resume_or_reset`` returning at once (``if True:`` in place
    of ``if not last_path.exists():``), so a retry starts afresh."""
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
        killed = _stage_pids(proc.pid, "train", "Net-mse")
        assert len(killed) == 1, f"training processes below snakemake: {killed}"
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


#: Loaded by every Python process of the shard test (PYTHONPATH): inside ``ssimrecon shard`` only,
#: closing an HDF5 file opened for writing first announces the file in $SSIMRECON_TEST_MARKER and
#: then stalls, so the test can kill the job while its shard is written but not yet finished.
STALL_SHARD_WRITES = """
import os, sys, time
from pathlib import Path

if Path(sys.argv[0]).name == "ssimrecon" and sys.argv[1:2] == ["shard"]:
    import h5py

    _close = h5py.File.close

    def _stalling_close(self):
        if self.id.valid and self.mode == "r+":
            Path(os.environ["SSIMRECON_TEST_MARKER"]).write_text(str(self.filename))
            time.sleep(600)
        _close(self)

    h5py.File.close = _stalling_close
"""


def test_shard_job_killed_mid_run_is_not_accepted(workspace: Workspace, tmp_path: Path) -> None:
    """A shard job SIGKILLed while its HDF5 file is being written leaves nothing under the final
    name (at most atomic.py's hidden temporary file), and the rerun writes a valid shard.

    Mutation tried (fails this test): ``write_shard`` writing ``h5py.File(path, "w")`` directly
    instead of the temporary file of ``atomic_output``."""
    workspace.snakemake("--cores", "1", "--until", "split")
    subject = sorted(p.name for p in (workspace.results / "nifti").rglob("*.nii.gz"))[0].split("-")[
        0
    ]
    target = f"results/{workspace.config['experiment']}/shards/{subject}.h5"
    shard = workspace.root / target
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STALL_SHARD_WRITES)
    marker = tmp_path / "writing"
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", target],
        cwd=workspace.root,
        env=workspace.env({"PYTHONPATH": str(hook), "SSIMRECON_TEST_MARKER": str(marker)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(marker.exists, 120, "the shard job to write its HDF5 file", proc)
        writers = _stage_pids(proc.pid, "shard")
        assert len(writers) == 1, writers
        # Snakemake first, so that it cannot clean up after its failed job; then the writer,
        # which may run in a session of its own.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.kill(writers[0], signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    written = workspace.root / marker.read_text()  # relative to the job's directory
    assert written.parent == shard.parent and written != shard, written
    assert not shard.exists(), "a killed shard job left a file under the final name"
    leftovers = [p.name for p in shard.parent.iterdir()]
    assert all(name.startswith(f".{shard.name}.") and ".tmp" in name for name in leftovers), (
        leftovers
    )
    # A hard kill leaves Snakemake's lock behind; a user would unlock the same way.
    workspace.snakemake("--unlock", "--cores", "1")
    workspace.snakemake("--cores", "1", "--rerun-incomplete", target)
    from ssimrecon.kspace.shards import validate_shard

    validate_shard(shard)


def test_a_second_run_in_the_same_folder_is_refused_and_the_first_finishes(
    workspace: Workspace,
) -> None:
    """Two Snakemake runs over the same outputs would overwrite each other's files: while the first
    runs, a second is refused (incomplete files), and so is one with --rerun-incomplete (the
    lock); the first is not disturbed."""
    first = _start(workspace, "--cores", "2")
    try:
        _wait_for(lambda: (workspace.results / "logs").exists(), 120, "the first run's jobs", first)
        # Snakemake sees the first run's outputs marked incomplete and refuses; its message
        # suggests --rerun-incomplete, which would rebuild them under the first run: the lock
        # refuses that too.
        second = workspace.snakemake("--cores", "2", check=False, timeout=300)
        assert second.returncode != 0
        refused = second.stdout + second.stderr
        assert "IncompleteFilesException" in refused or "Directory cannot be locked" in refused
        third = workspace.snakemake("--cores", "2", "--rerun-incomplete", check=False, timeout=300)
        assert third.returncode != 0
        assert "Directory cannot be locked" in third.stdout + third.stderr
        out, _ = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 0, out[-4000:]
    assert (workspace.results / "table1.csv").exists()
