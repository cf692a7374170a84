"""config.check: mistakes that used to surface inside a job, after download and shards, now stop the
run before any job with a message naming the key."""

from __future__ import annotations

import copy

import pytest
import yaml

from ssimrecon.config.check import check_config
from ssimrecon.errors import ConfigError
from tests.helpers.workspace import REPO, Workspace, deep_merge

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def paper(overrides: dict) -> dict:
    return deep_merge(yaml.safe_load((REPO / "config.yaml").read_text()), overrides)


@pytest.mark.parametrize("device", ["gpu0", "cuda0", "GPU", "cuda:x", ""])
def test_unknown_training_device_is_refused(device: str) -> None:
    """Mutation tried: dropping the schema's device pattern lets 'gpu0' through to the job."""
    with pytest.raises(ConfigError, match=r"^config key 'training\.device': "):
        check_config(paper({"training": {"device": device}}), SCHEMA)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_valid_training_devices_pass(device: str) -> None:
    assert check_config(paper({"training": {"device": device}}), SCHEMA)["training"]["device"]


def test_a_loss_whose_weights_are_all_zero_is_refused() -> None:
    config = paper({"networks": {"Net-mse": {"loss": {"mse": 0.0, "dssim": 0}}}})
    with pytest.raises(ConfigError, match=r"'networks\.Net-mse\.loss': every weight is 0"):
        check_config(config, SCHEMA)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"networks": {"Net-mse-dssim": {"loss": {"mse": 1.0, "dssim": -0.1}}}},
            r"^config key 'networks\.Net-mse-dssim\.loss\.dssim': weight must be a non-negative",
        ),
        (
            {"training": {"batch_size": 6, "gpus": 4}},
            r"^config key 'training\.batch_size': 6 must be a multiple of training\.gpus \(4\)",
        ),
        (
            {"training": {"crop": [96, 272]}},
            r"^config key 'training\.crop': \[96, 272\] must fit in image_size \[160, 256\]",
        ),
        (
            {"training": {"crop": [120, 120]}},
            r"^config key 'training\.crop': .* be divisible by 16$",
        ),
    ],
)
def test_the_rules_of_the_objects_that_use_the_values_stop_the_config(
    overrides: dict, message: str
) -> None:
    """The loss's weight rule, TrainSettings' batch rule and its crop rule, each stated once in
    its owner, refuse the config before any job with the owner's message naming the key.
    Mutations tried: dropping the check_weights or the check_crop call in check_consistency lets
    the config through."""
    with pytest.raises(ConfigError, match=message):
        check_config(paper(overrides), SCHEMA)


def test_a_network_name_with_a_space_is_named() -> None:
    """It used to be reported as "unknown key 'networks'"."""
    config = paper({})
    config["networks"]["Net mse 2"] = copy.deepcopy(config["networks"]["Net-mse"])
    with pytest.raises(ConfigError, match=r"'networks\.Net mse 2': the name must match"):
        check_config(config, SCHEMA)


def test_check_config_fills_defaults_in_place() -> None:
    config = paper({})
    del config["training"]["epochs"]
    assert check_config(config, SCHEMA) is config and config["training"]["epochs"] == 100


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"training": {"device": "gpu0"}}, "training.device"),
        ({"networks": {"Net-mse": {"loss": {"mse": 0}}}}, "networks.Net-mse.loss"),
    ],
)
def test_workflow_stops_before_any_job(
    workspace: Workspace, overrides: dict, expected: str
) -> None:
    workspace.write_config(overrides)
    proc = workspace.snakemake("--cores", "1", check=False)
    assert proc.returncode != 0 and expected in proc.stderr + proc.stdout
    assert not (workspace.root / "results").exists(), "no job may run with an invalid config"
