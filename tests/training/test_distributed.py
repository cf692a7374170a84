"""training.gpus: several processes (gloo on CPU here) train one run with DistributedDataParallel:
the same loss curve as one process with the same global batch, and a killed run resumes."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssimrecon.config.sections import settings_from
from ssimrecon.config.stages import TrainSettings
from ssimrecon.errors import SsimreconError
from ssimrecon.training import distributed
from ssimrecon.training.dataset import EpochSampler
from ssimrecon.training.loop import Trainer
from ssimrecon.training.signals import TrainingInterrupted
from ssimrecon.training.torchrun import launch_command
from tests.helpers.shards import mask_path_of, write_test_shards
from tests.helpers.training import TINY_TRAINING, train_arguments
from tests.helpers.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
MODEL = {"base_channels": 4, "depth": 2, "residual": True}
LOSS = {"mse": 1.0, "dssim": 0.1}
#: global batch 4 over 12 training slices: 3 optimiser steps per epoch, 2 slices per rank
TRAINING = {**TINY_TRAINING, "epochs": 2, "batch_size": 4, "gpus": 2}
#: 2 processes vs 1 with the same global batch: gradients are averaged over ranks instead of
#: over one batch, so float32 rounding differs; losses agree to this relative tolerance
RTOL = 1e-4


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """3 training subjects x 5 slices (one blank each: 12 training slices), 1 validation subject."""
    paths = write_test_shards(
        tmp_path_factory.mktemp("shards"), n_subjects=4, n_slices=5, empty=1, seed=1
    )
    return {"train": paths[:3], "val": paths[3:]}


def worker(spec: dict) -> int:
    """One rank of a 2-process run (``python -c``, environment from :func:`start_ranks`);
    ``spec["kill"]`` = [rank, epoch, batch, signal name] sends that signal to this rank there."""
    torch.set_num_threads(1)
    settings = settings_from(TrainSettings, spec["training"], "training")
    kill = spec.get("kill")
    rank = int(os.environ["RANK"])

    def hook(epoch: int, batch: int) -> None:
        if kill and kill[0] == rank and [epoch, batch] == kill[1:3]:
            os.kill(os.getpid(), getattr(signal, kill[3]))

    out = Path(spec["out"])
    trainer = Trainer(
        spec["train"],
        spec["val"],
        mask_path=spec["mask"],
        model_cfg=MODEL,
        loss_terms=LOSS,
        settings=settings,
        best_path=out / "best.pt",
        history_path=out / "history.csv",
        state_dir=out / "state",
        network_name="net",
        on_batch_end=hook,
    )
    try:
        summary = trainer.fit()
    except TrainingInterrupted as exc:
        return exc.exit_code
    print(json.dumps({"rank": rank, "resumed_from": summary["resumed_from"]}))
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ranks(data: dict[str, list[Path]], out: Path, kill: list | None = None) -> list:
    """Both ranks of a 2-process run as subprocesses (what torchrun would start)."""
    spec = {
        "training": TRAINING,
        "train": [str(p) for p in data["train"]],
        "val": [str(p) for p in data["val"]],
        "mask": str(mask_path_of(data["train"])),
        "out": str(out),
        "kill": kill,
    }
    code = (
        "import json, sys; from tests.training.test_distributed import worker; "
        "sys.exit(worker(json.loads(sys.argv[1])))"
    )
    port = free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "PYTHONPATH": str(REPO),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code, json.dumps(spec)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def wait_all(procs: list) -> list[tuple[int, str, str]]:
    return [(p.wait(timeout=300), *p.communicate()) for p in procs]


def history(out: Path) -> list[dict[str, float]]:
    with open(out / "history.csv", newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def single_process(data: dict[str, list[Path]], out: Path) -> list[dict[str, float]]:
    """The reference: one process, the same global batch."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(
            data["train"],
            data["val"],
            mask_path=mask_path_of(data["train"]),
            model_cfg=MODEL,
            loss_terms=LOSS,
            settings=settings_from(TrainSettings, {**TRAINING, "gpus": 1}, "training"),
            best_path=out / "best.pt",
            history_path=out / "history.csv",
            state_dir=out / "state",
            network_name="net",
            group=distributed.SINGLE,
        ).fit()
    finally:
        torch.set_num_threads(old)
    return history(out)


def assert_curves_match(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want) == TRAINING["epochs"]
    for row, ref in zip(got, want):
        for key in ("train_loss", "train_mse", "train_dssim", "val_loss", "val_ssim"):
            assert row[key] == pytest.approx(ref[key], rel=RTOL), key


def test_shares_cover_each_global_batch_once() -> None:
    sampler = EpochSampler(10, seed=3)
    sampler.set_epoch(1, skip=4)  # resume at global batch 1 of batch size 4
    shares = [
        list(distributed.RankBatchSampler(sampler, 4, distributed.Group(r, 3, r))) for r in range(3)
    ]
    order = sampler.order()[4:].tolist()
    # global batches [4 slices], [2 slices < 3 ranks: left out]
    assert [len(s) for s in shares] == [1, 1, 1]
    assert sorted(sum((s[0] for s in shares), [])) == sorted(order[:4])
    assert distributed.n_batches(10, 4, 3) == 2 and distributed.n_batches(10, 4, 2) == 3
    assert distributed.share(5, 0, 2) == (0, 3) and distributed.share(5, 1, 2) == (3, 2)


def test_gpus_needs_as_many_processes(data: dict[str, list[Path]], tmp_path: Path) -> None:
    assert launch_command(1, "python") == ["ssimrecon"]
    settings = settings_from(TrainSettings, TRAINING, "training")
    with pytest.raises(SsimreconError, match="training.gpus: 2, but 1 process"):
        Trainer(
            data["train"],
            data["val"],
            mask_path=mask_path_of(data["train"]),
            model_cfg=MODEL,
            loss_terms=LOSS,
            settings=settings,
            best_path=tmp_path / "best.pt",
            history_path=tmp_path / "history.csv",
            state_dir=tmp_path / "state",
            network_name="net",
            group=distributed.SINGLE,
        )
    with pytest.raises(SsimreconError, match="training.batch_size: 3 must be a multiple"):
        settings_from(TrainSettings, {**TRAINING, "batch_size": 3}, "training")


def test_two_processes_under_torchrun_match_one(
    data: dict[str, list[Path]], tmp_path: Path
) -> None:
    """`ssimrecon train` started by torchrun (as rule train does for training.gpus 2)."""
    config = {"model": MODEL, "loss": LOSS, "training": TRAINING}
    out = tmp_path / "ddp"
    command = launch_command(2, sys.executable) + train_arguments(
        data["train"], data["val"], config, out
    )
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "best.pt").is_file()
    assert_curves_match(history(out), single_process(data, tmp_path / "one"))


def test_sigterm_on_one_rank_stops_both_and_resumes(
    data: dict[str, list[Path]], tmp_path: Path
) -> None:
    out = tmp_path / "ddp"
    results = wait_all(start_ranks(data, out, kill=[1, 0, 1, "SIGTERM"]))
    assert [r[0] for r in results] == [128 + signal.SIGTERM] * 2, results[0][2][-3000:]
    assert not (out / "history.csv").exists()  # stopped inside epoch 1
    results = wait_all(start_ranks(data, out))
    assert [r[0] for r in results] == [0, 0], results[0][2][-3000:]
    resumed = [json.loads(r[1].strip().splitlines()[-1])["resumed_from"] for r in results]
    assert resumed == [[0, 3], [0, 3]]  # the flag reached rank 0 at the epoch's last batch
    assert_curves_match(history(out), single_process(data, tmp_path / "one"))


def test_sigkill_of_one_rank_resumes_from_last_epoch(
    data: dict[str, list[Path]], tmp_path: Path
) -> None:
    out = tmp_path / "ddp"
    results = wait_all(start_ranks(data, out, kill=[1, 1, 1, "SIGKILL"]))
    assert results[1][0] == -signal.SIGKILL
    assert results[0][0] != 0  # rank 0 fails instead of hanging when its peer dies
    assert len(history(out)) == 1  # epoch 1 was saved
    results = wait_all(start_ranks(data, out))
    assert [r[0] for r in results] == [0, 0], results[0][2][-3000:]
    resumed = [json.loads(r[1].strip().splitlines()[-1])["resumed_from"] for r in results]
    assert resumed == [[1, 0], [1, 0]]
    assert_curves_match(history(out), single_process(data, tmp_path / "one"))


@pytest.mark.workflow
def test_rule_train_asks_for_the_gpus_and_starts_torchrun(workspace: Workspace) -> None:
    """Dry run with training.gpus 2 (batch 4): each train job asks gpu=2, twice the CPUs and
    memory, and runs `ssimrecon train` under torchrun."""
    config = workspace.write_config({"training": {"gpus": 2, "batch_size": 4, "threads": 1}})
    cpus = 2 * (1 + config["training"].get("num_workers", 2))  # per process: threads + workers
    proc = workspace.snakemake("-n", "-p", "--cores", "1")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    blocks = re.findall(r"^rule train:\n((?:    .*\n)+)", text, re.MULTILINE)
    resources = [line for b in blocks for line in b.splitlines() if "resources:" in line]
    assert len(resources) == 2
    for line in resources:
        assert f"gpu=2, cpus_per_task={cpus}," in line and "mem_mb=64000" in line, line
    assert (
        text.count(
            "-m torch.distributed.run --standalone --nproc-per-node=2 -m ssimrecon.cli train"
        )
        == 2
    )


def test_config_check_wants_batch_size_a_multiple_of_gpus() -> None:
    import yaml

    from ssimrecon.config.check import check_config
    from ssimrecon.errors import ConfigError

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["training"]["gpus"] = 4  # batch_size 4: one slice per GPU
    assert check_config(config, schema)["training"]["gpus"] == 4
    config["training"]["gpus"] = 3
    with pytest.raises(ConfigError, match="'training.batch_size': 4 must be a multiple of"):
        check_config(config, schema)
