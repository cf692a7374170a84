"""Incremental reruns: change one thing, rerun only what depends on it (Snakemake's own dry-run
plan)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.plans import planned_jobs, planned_wildcards
from tests.helpers.workspace import Workspace

pytestmark = pytest.mark.workflow

#: splits every method is evaluated on (Table 1 on test, the same table on val)
SPLITS = ("test", "val")
UPSTREAM = {"demo_archive", "download", "extract", "qc", "split", "mask", "shard"}


@pytest.fixture
def done(completed_workspace: Workspace, tmp_path: Path) -> Workspace:
    """A private copy of the completed tiny run."""
    return completed_workspace.clone(tmp_path / "ws")


def test_second_run_does_nothing(done: Workspace) -> None:
    assert planned_jobs(done) == {}


def test_changing_dssim_weight_retrains_only_that_network(done: Workspace) -> None:
    done.write_config({"networks": {"Net-mse-dssim": {"loss": {"mse": 1.0, "dssim": 0.5}}}})
    jobs = planned_jobs(done)
    assert jobs["train"] == 1 and jobs["evaluate"] == len(SPLITS)
    assert planned_wildcards(done, "train", "run") == ["Net-mse-dssim"]
    assert planned_wildcards(done, "evaluate", "run") == ["Net-mse-dssim"] * len(SPLITS)
    assert {"table", "figure2", "curves"} <= set(jobs)
    assert not UPSTREAM & set(jobs), jobs
    assert "evaluate_zero_filled" not in jobs


def test_changing_acceleration_makes_a_mask_and_retrains_on_the_same_shards(
    done: Workspace,
) -> None:
    """Shards hold no mask (it is applied on reading): a new acceleration is one new mask file and
    every run after it, never a shard."""
    done.write_config({"mask": {"acceleration": 3}})
    jobs = planned_jobs(done)
    assert jobs["mask"] == 1
    assert "shard" not in jobs
    assert jobs["train"] == len(done.config["networks"])
    assert jobs["evaluate"] == len(SPLITS) * len(done.config["networks"])
    assert {"evaluate_zero_filled", "table", "figure2", "curves"} <= set(jobs)
    assert not {"download", "extract", "qc", "split"} & set(jobs), jobs


def test_changing_a_figure_option_redraws_only_the_figure(done: Workspace) -> None:
    done.write_config({"figure": {"zoom_size": 0.4}})
    assert set(planned_jobs(done)) == {"figure2", "all"}


def test_adding_a_network_trains_only_the_new_one(done: Workspace) -> None:
    done.write_config({"networks": {"Net-mse-edge": {"loss": {"mse": 1.0, "edge": 0.1}}}})
    jobs = planned_jobs(done)
    assert jobs["train"] == 1
    assert planned_wildcards(done, "train", "run") == ["Net-mse-edge"]
    assert planned_wildcards(done, "evaluate", "run") == ["Net-mse-edge"] * len(SPLITS)
    assert not UPSTREAM & set(jobs), jobs


def test_turning_on_tensorboard_replans_training_only_with_the_option(done: Workspace) -> None:
    """The option reaches the train command (a params change, so the train jobs are planned: they
    resume their finished state, TensorBoard being no part of the run's fingerprint); nothing
    upstream of training is redone."""
    done.write_config({"training": {"tensorboard": True}})
    jobs = planned_jobs(done)
    assert jobs["train"] == len(done.config["networks"])
    assert not UPSTREAM & set(jobs), jobs
    proc = done.snakemake("--dry-run", "--printshellcmds", "--cores", "1")
    commands = [line for line in proc.stdout.splitlines() if "ssimrecon train" in line]
    assert commands and all("--tensorboard" in c for c in commands), commands
    assert all("/tensorboard" in c.split("--tensorboard", 1)[1] for c in commands)
