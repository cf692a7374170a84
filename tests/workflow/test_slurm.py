"""`snakemake --profile slurm` on a real one-node SLURM cluster (tests/slurm/cluster.sh).

The cluster runs on 127.0.0.1 from Debian's slurm-wlm and munge (tests/slurm/install-debian.sh) and
needs root. Without `sbatch` these tests skip, unless SSIMRECON_REQUIRE_SLURM=1 (set by .ci/run),
which turns the skip into a failure.

The profile under test is profiles/slurm/profile.yaml, installed as the user's `slurm` profile
($XDG_CONFIG_HOME/snakemake/slurm, XDG_CONFIG_HOME a temporary directory) with the settings a
cluster without accounting database needs added (see LOCAL_CLUSTER_SETTINGS), and the command is
exactly `snakemake --profile slurm`, typed in the workspace root.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers.workspace import REPO, Workspace

pytestmark = pytest.mark.slurm

CLUSTER_SH = REPO / "tests" / "slurm" / "cluster.sh"
STATE_DIR = Path(os.environ.get("SSIMRECON_SLURM_DIR", "/tmp/ssimrecon-slurm-pytest"))

#: Added to profiles/slurm/profile.yaml for the test cluster: it has no accounting database, so
#: `sacct` fails (and the plugin would wait for it forever); squeue sees finished jobs for
#: MinJobAge=300 s. The first status check after 2 s instead of 40 s keeps the tests short.
LOCAL_CLUSTER_SETTINGS = {
    "slurm-status-command": "squeue",
    "slurm-init-seconds-before-status-checks": 2,
    "slurm-keep-successful-logs": True,
    "latency-wait": 5,
}
#: Rules whose jobs must not ask for a GPU (the shard group job is named after its group).
DATA_JOB_COMMENTS = (
    "rule_download",
    "rule_extract",
    "rule_qc",
    "rule_split",
    "rule_mask",
    "rule_shards",
)


# ---------------------------------------------------------------------------------------------
# cluster


@dataclass
class Cluster:
    state_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.state_dir / "slurm.conf")}

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows (finished ones for MinJobAge=300 s), as key=value
        dicts."""
        out = subprocess.run(
            ["scontrol", "-o", "show", "job"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if "No jobs in the system" in out.stdout + out.stderr:
            return []
        assert out.returncode == 0, out.stderr
        return [
            dict(re.findall(r"(\S+?)=(\S*)", line))
            for line in out.stdout.splitlines()
            if line.strip()
        ]

    def job_ids(self) -> set[str]:
        return {job["JobId"] for job in self.jobs()}


def _unavailable(reason: str) -> None:
    if os.environ.get("SSIMRECON_REQUIRE_SLURM") == "1":
        pytest.fail(f"SSIMRECON_REQUIRE_SLURM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A one-node cluster for this module: started by tests/slurm/cluster.sh, stopped at the end."""
    if shutil.which("sbatch") is None:
        _unavailable("sbatch not found (install SLURM: bash tests/slurm/install-debian.sh)")
    search = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    missing = [
        tool
        for tool in ("munged", "slurmctld", "slurmd")
        if shutil.which(tool, path=search) is None
    ]
    if missing:
        _unavailable(f"{', '.join(missing)} not found (bash tests/slurm/install-debian.sh)")
    if os.geteuid() != 0:
        _unavailable("the local SLURM cluster (tests/slurm/cluster.sh) needs root")
    env = {**os.environ, "SSIMRECON_SLURM_DIR": str(STATE_DIR)}
    started = subprocess.run(
        ["bash", str(CLUSTER_SH), "start"], env=env, capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        pytest.fail(f"cluster.sh start failed:\n{started.stdout}\n{started.stderr}", pytrace=False)
    try:
        yield Cluster(STATE_DIR)
    finally:
        subprocess.run(
            ["bash", str(CLUSTER_SH), "stop"], env=env, capture_output=True, text=True, timeout=120
        )


# ------------------------------------------------------------------------------------ snakemake
# runs


def install_slurm_profile(workspace: Workspace, config_home: Path) -> Path:
    """profiles/slurm/profile.yaml (+ LOCAL_CLUSTER_SETTINGS) as
    $XDG_CONFIG_HOME/snakemake/slurm/."""
    profile = yaml.safe_load((workspace.root / "profiles" / "slurm" / "profile.yaml").read_text())
    assert profile["executor"] == "slurm"
    profile.update(LOCAL_CLUSTER_SETTINGS)
    target = config_home / "snakemake" / "slurm"
    target.mkdir(parents=True, exist_ok=True)
    (target / "profile.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return config_home


class Run:
    """`snakemake --profile slurm [targets]` in the workspace root, output in a file."""

    def __init__(self, workspace: Workspace, config_home: Path, log: Path, *targets: str) -> None:
        env = workspace.env({"XDG_CONFIG_HOME": str(config_home)})
        # Whatever CUDA_VISIBLE_DEVICES a training job sees must come from SLURM's GPU allocation.
        env.pop("CUDA_VISIBLE_DEVICES", None)
        self.command = " ".join(["snakemake --profile slurm", *map(shlex.quote, targets)])
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            self.command,
            shell=True,
            cwd=workspace.root,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    @property
    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text()

    def run_id(self) -> str | None:
        found = re.search(r"SLURM run ID: (\S+)", self.output)
        return found.group(1) if found else None

    def wait(self, timeout: float) -> int:
        """Exit status; on timeout SIGINT (Snakemake then cancels its SLURM jobs) and fail."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(
                f"`{self.command}` still running after {timeout:.0f} s:\n{self.output[-6000:]}"
            )
        finally:
            self._out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


def _wait_for(predicate, timeout: float, what: str, run: Run) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if run.proc.poll() is not None:
            pytest.fail(f"snakemake ended before {what}:\n{run.output[-6000:]}")
        time.sleep(0.1)
    run.stop()
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{run.output[-6000:]}")


def _saved_epoch(state: Path) -> int:
    """Epoch index stored in a training state (-1 while missing or being replaced)."""
    try:
        return int(torch.load(state, weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - polled while the trainer renames it into place
        return -1


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------------- tests


def test_cluster_has_an_idle_node_with_gpus(cluster: Cluster) -> None:
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%T %G"], env=cluster.env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    state, gres = out.stdout.split()
    assert state == "idle"
    assert gres.startswith("gpu:")


def test_profile_slurm_runs_the_workflow_on_the_cluster(
    cluster: Cluster, workspace: Workspace, completed_workspace: Workspace, tmp_path: Path
) -> None:
    """Mutation tried: deleting ``gpu=1`` from rule ``evaluate``'s resources fails this test at the
    evaluation jobs' GPU request (``'gpu:1' in TresPerJob``)."""
    config_home = install_slurm_profile(workspace, tmp_path / "config")
    run = Run(workspace, config_home, tmp_path / "snakemake.log")
    code = run.wait(timeout=540)
    out = run.output
    assert code == 0, out[-6000:]
    assert re.search(
        r"Using profiles? slurm and workflow specific profile profiles/default", out
    ), out[:2000]

    # Every job of the run went through SLURM, and all of them completed.
    run_id = run.run_id()
    assert run_id, out[-3000:]
    jobs = [job for job in cluster.jobs() if job.get("JobName") == run_id]
    assert jobs, "no SLURM job of this run"
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}, jobs
    comments = sorted(job["Comment"] for job in jobs)

    # Training: one job per network, each submitted with a GPU request (sbatch --gpus=1).
    networks = sorted(workspace.config["networks"])
    train_jobs = [job for job in jobs if job["Comment"].startswith("rule_train")]
    assert (
        sorted(job["Comment"].removeprefix("rule_train_wildcards_") for job in train_jobs)
        == networks
    )
    for job in train_jobs:
        assert "gpu:1" in job.get("TresPerJob", ""), job
        assert int(job["NumCPUs"]) >= int(workspace.config["training"]["threads"])
    # Evaluation: one job per split and network, each with a GPU request too (zero-filled needs
    # none).
    eval_jobs = [job for job in jobs if job["Comment"].startswith("rule_evaluate_wildcards_")]
    assert sorted(
        job["Comment"].removeprefix("rule_evaluate_wildcards_") for job in eval_jobs
    ) == sorted(f"{split}_{network}" for split in ("test", "val") for network in networks)
    for job in eval_jobs:
        assert "gpu:1" in job.get("TresPerJob", ""), job

    # Data jobs ask for no GPU; the per-subject shard jobs are one group job (8 subjects < 50).
    data_jobs = [job for job in jobs if job["Comment"].startswith(DATA_JOB_COMMENTS)]
    assert data_jobs, comments
    for job in data_jobs:
        assert "gpu" not in job.get("TresPerJob", "") + job.get("TresPerNode", ""), job
    shard_jobs = [job for job in jobs if job["Comment"].startswith("rule_shards")]
    assert len(shard_jobs) == 1, comments
    assert int(shard_jobs[0]["NumCPUs"]) == 1  # the group's jobs run one after another
    shards = sorted(p.stem for p in (workspace.results / "shards").glob("*.h5"))
    split = (workspace.results / "split.csv").read_text().splitlines()[1:]
    assert shards == sorted(line.split(",")[0] for line in split)  # train, val and test subjects

    # The training jobs saw the GPU SLURM gave them (CUDA_VISIBLE_DEVICES set by SLURM, not by
    # us: Run removes it) and trained on the device that environment gives: CUDA exactly when
    # torch in the job saw a CUDA device.
    for network in networks:
        log = (workspace.results / "logs" / "train" / f"{network}.log").read_text()
        seen = re.search(
            r"device: (\S+) \(CUDA_VISIBLE_DEVICES=([^,\s)]*), torch sees (\d+) CUDA device", log
        )
        assert seen, log[-2000:]
        device, visible, cuda_count = seen.group(1), seen.group(2), int(seen.group(3))
        assert re.fullmatch(r"\d+", visible), seen.group(0)
        assert device.split(":")[0] == ("cuda" if cuda_count > 0 else "cpu"), seen.group(0)

    # The same artifacts as a local run.
    assert _files(workspace.results) == _files(completed_workspace.results)


def test_training_cancelled_by_scancel_is_retried_and_resumes(
    cluster: Cluster, workspace: Workspace, tmp_path: Path
) -> None:
    workspace.config["networks"].pop("Net-mse-dssim")
    epochs = 40
    workspace.write_config({"training": {"epochs": epochs}})
    # Data locally (seconds), so that the SLURM run is the training job alone. (The shard jobs
    # come after the split checkpoint, so they are named as targets once split.csv exists.)
    out = f"results/{workspace.config['experiment']}"
    workspace.snakemake("--cores", "2", f"{out}/split.csv")
    split = (workspace.results / "split.csv").read_text().splitlines()[1:]
    workspace.snakemake(
        "--cores", "2", *(f"{out}/shards/{line.split(',')[0]}.h5" for line in split)
    )
    target = f"{out}/models/Net-mse/best.pt"
    state = workspace.results / "state" / "Net-mse" / "last.pt"

    run = Run(
        workspace,
        install_slurm_profile(workspace, tmp_path / "config"),
        tmp_path / "snakemake.log",
        target,
    )
    try:
        _wait_for(lambda: _saved_epoch(state) >= 1, 240, "a checkpoint after the first epoch", run)
        running = [
            job
            for job in cluster.jobs()
            if job.get("JobName") == run.run_id()
            and job["Comment"].startswith("rule_train")
            and job["JobState"] == "RUNNING"
        ]
        assert len(running) == 1, running
        epoch_at_cancel = _saved_epoch(state)
        subprocess.run(["scancel", running[0]["JobId"]], env=cluster.env, check=True, timeout=30)
        code = run.wait(timeout=300)
    finally:
        run.stop()
    out = run.output
    assert code == 0, out[-6000:]
    assert epoch_at_cancel < epochs, "training finished before scancel"

    # SLURM: the cancelled job, then the retry that completed.
    train_jobs = sorted(
        (
            job
            for job in cluster.jobs()
            if job.get("JobName") == run.run_id() and job["Comment"].startswith("rule_train")
        ),
        key=lambda job: int(job["JobId"]),
    )
    assert [job["JobState"] for job in train_jobs] == ["CANCELLED", "COMPLETED"], train_jobs
    assert all("gpu:1" in job.get("TresPerJob", "") for job in train_jobs)

    # The retry resumed from the last checkpoint (no earlier than the epoch saved before scancel)
    # and finished every epoch.
    log = (workspace.results / "logs" / "train" / "Net-mse.log").read_text()
    resumed = re.findall(r"resuming Net-mse from epoch (\d+)", log)
    assert resumed, log[-3000:]
    assert int(resumed[-1]) >= 1
    assert int(resumed[-1]) - 1 >= epoch_at_cancel >= 1
    history = (workspace.results / "models" / "Net-mse" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + epochs


def test_time_limit_warning_sigusr1_saves_state_and_the_retry_resumes(
    cluster: Cluster, workspace: Workspace, tmp_path: Path
) -> None:
    """The profile asks SLURM for SIGUSR1 before a training job's time limit (sbatch --signal via
    slurm_extra); it reaches the training inside the job step, which saves its state mid-epoch and
    exits, and the retry resumes at that batch. The test shortens the limit to 1 minute and the
    warning to 50 s before it (the profile's 300 s would come at once); the time limit's own
    SIGTERM would make the retry say "saved on SIGTERM" instead."""
    workspace.config["networks"].pop("Net-mse-dssim")
    workspace.write_config({"training": {"epochs": 500}})
    out = f"results/{workspace.config['experiment']}"
    workspace.snakemake("--cores", "2", f"{out}/split.csv")
    split = (workspace.results / "split.csv").read_text().splitlines()[1:]
    workspace.snakemake(
        "--cores", "2", *(f"{out}/shards/{line.split(',')[0]}.h5" for line in split)
    )
    config_home = install_slurm_profile(workspace, tmp_path / "config")
    profile_path = config_home / "snakemake" / "slurm" / "profile.yaml"
    profile = yaml.safe_load(profile_path.read_text())
    asked = profile["set-resources"]["train"]["slurm_extra"]
    assert re.fullmatch(r"'--signal=USR1@(\d+)'", asked), asked
    profile["set-resources"]["train"].update(
        {"runtime": 1, "slurm_extra": asked.replace(asked.split("@")[1][:-1], "50")}
    )
    profile_path.write_text(yaml.safe_dump(profile, sort_keys=False))

    # Snakemake replaces a job's log when it retries the job, so the evidence is the retry's
    # "resuming ... (last.pt, saved on SIGUSR1)", read from the state the signalled attempt wrote.
    log = workspace.results / "logs" / "train" / "Net-mse.log"
    resumed_after_signal = re.compile(
        r"resuming Net-mse from epoch \d+ batch \d+ \(\S+, saved on (SIG\w+)\)"
    )
    run = Run(workspace, config_home, tmp_path / "snakemake.log", f"{out}/models/Net-mse/best.pt")
    try:
        _wait_for(
            lambda: log.exists() and resumed_after_signal.search(log.read_text()) is not None,
            240,
            "a retry that resumes from a state saved on a signal",
            run,
        )
    finally:
        run.stop()
    assert resumed_after_signal.search(log.read_text()).group(1) == "SIGUSR1"
    # Each attempt was its own SLURM job with the 1-minute limit and a GPU request.
    train_jobs = [
        job
        for job in cluster.jobs()
        if job.get("JobName") == run.run_id() and job["Comment"].startswith("rule_train")
    ]
    assert len(train_jobs) >= 2, train_jobs
    assert all(job["TimeLimit"] == "00:01:00" for job in train_jobs), train_jobs
    assert all("gpu:1" in job.get("TresPerJob", "") for job in train_jobs)


def test_invalid_config_fails_before_any_job_is_submitted(
    cluster: Cluster, workspace: Workspace, tmp_path: Path
) -> None:
    workspace.write_config({"training": {"epochs": "many"}})
    before = cluster.job_ids()
    run = Run(
        workspace, install_slurm_profile(workspace, tmp_path / "config"), tmp_path / "snakemake.log"
    )
    code = run.wait(timeout=120)
    out = run.output
    assert code != 0, out[-3000:]
    assert "training.epochs" in out, out[-3000:]
    assert "submitted with SLURM jobid" not in out
    assert cluster.job_ids() == before


def test_a_study_runs_each_run_as_its_own_gpu_job_and_a_cancelled_run_resumes_alone(
    cluster: Cluster, workspace: Workspace, tmp_path: Path
) -> None:
    """A tiny study (2 seeds x (Net-mse + Net-mse-dssim at one weight) = 4 runs) through
    `snakemake --profile slurm`: one SLURM job per run, each asking for a GPU; one of them is
    cancelled with scancel after its first checkpoint, retried by the profile's `retries` and
    resumed, and the other runs are submitted exactly once."""
    epochs = 40
    workspace.write_config(
        {
            "training": {"epochs": epochs},
            "study": {"seeds": [0, 1], "accelerations": [4], "sweep": {"dssim": [0.2]}},
        }
    )
    out = f"results/{workspace.config['experiment']}"
    workspace.snakemake("--cores", "2", f"{out}/split.csv")
    split = (workspace.results / "split.csv").read_text().splitlines()[1:]
    workspace.snakemake(
        "--cores", "2", *(f"{out}/shards/{line.split(',')[0]}.h5" for line in split)
    )
    runs = sorted(
        f"{network}_R4_seed{seed}"
        for network in ("Net-mse", "Net-mse-dssim_dssim0.2")
        for seed in (0, 1)
    )
    run = Run(
        workspace,
        install_slurm_profile(workspace, tmp_path / "config"),
        tmp_path / "snakemake.log",
        *(f"{out}/models/{name}/best.pt" for name in runs),
    )
    states = {name: workspace.results / "state" / name / "last.pt" for name in runs}
    try:
        _wait_for(
            lambda: any(_saved_epoch(s) >= 1 for s in states.values()),
            240,
            "a checkpoint of a run after its first epoch",
            run,
        )
        victim = next(name for name, s in states.items() if _saved_epoch(s) >= 1)
        job = next(
            job
            for job in cluster.jobs()
            if job.get("JobName") == run.run_id()
            and job["Comment"] == f"rule_train_wildcards_{victim}"
            and job["JobState"] == "RUNNING"
        )
        epoch_at_cancel = _saved_epoch(states[victim])
        subprocess.run(["scancel", job["JobId"]], env=cluster.env, check=True, timeout=30)
        code = run.wait(timeout=540)
    finally:
        run.stop()
    assert code == 0, run.output[-6000:]
    assert epoch_at_cancel < epochs, "training finished before scancel"

    train_jobs: dict[str, list[dict[str, str]]] = {}
    for job in sorted(cluster.jobs(), key=lambda job: int(job["JobId"])):
        if job.get("JobName") == run.run_id() and job["Comment"].startswith("rule_train"):
            train_jobs.setdefault(job["Comment"].removeprefix("rule_train_wildcards_"), []).append(
                job
            )
    assert sorted(train_jobs) == runs  # one job per run of the study
    for name, jobs in train_jobs.items():
        assert all("gpu:1" in job.get("TresPerJob", "") for job in jobs), jobs
        states_seen = [job["JobState"] for job in jobs]
        log = (workspace.results / "logs" / "train" / f"{name}.log").read_text()
        history = (workspace.results / "models" / name / "history.csv").read_text().splitlines()
        assert len(history) == 1 + epochs, name
        if name == victim:
            assert states_seen == ["CANCELLED", "COMPLETED"], jobs
            resumed = re.findall(rf"resuming {re.escape(name)} from epoch (\d+)", log)
            assert resumed and int(resumed[-1]) - 1 >= epoch_at_cancel >= 1, log[-3000:]
        else:  # the other runs were neither resubmitted nor restarted
            assert states_seen == ["COMPLETED"], jobs
            assert "resuming" not in log, log[-3000:]
