"""A study in config: the runs it expands into (names, weights, seeds) and the checks on it."""

from __future__ import annotations

import pytest
import yaml

from ssimrecon.config.check import check_config
from ssimrecon.config.runs import accelerations, expand_runs, number_label
from ssimrecon.errors import ConfigError
from tests.helpers.workspace import REPO, deep_merge

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
STUDY = {"seeds": [0, 1], "accelerations": [10, 4], "sweep": {"dssim": [0.01, 0.1, 1.0]}}


def config(overrides: dict) -> dict:
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    return check_config(deep_merge(base, overrides), SCHEMA)


def test_without_a_study_the_runs_are_the_networks() -> None:
    plain = config({})
    runs = expand_runs(plain)
    assert list(runs) == ["Net-mse", "Net-mse-dssim"]
    assert runs["Net-mse-dssim"].loss == {"mse": 1.0, "dssim": 0.1}
    assert {(r.acceleration, r.seed, r.swept) for r in runs.values()} == {(10.0, 0, ())}
    assert accelerations(plain) == [10.0]


def test_a_study_expands_into_one_run_per_network_weight_acceleration_and_seed() -> None:
    runs = expand_runs(config({"study": STUDY}))
    # Net-mse has no dssim term: one run per acceleration x seed; Net-mse-dssim one per weight too
    assert len(runs) == (1 + 3) * 2 * 2
    run = runs["Net-mse-dssim_dssim0.1_R10_seed1"]
    assert (run.network, run.acceleration, run.seed, run.swept) == (
        "Net-mse-dssim",
        10,
        1,
        ("dssim",),
    )
    assert run.loss == {"mse": 1.0, "dssim": 0.1} and run.condition == "Net-mse-dssim_dssim0.1_R10"
    assert runs["Net-mse-dssim_dssim1_R4_seed0"].loss == {"mse": 1.0, "dssim": 1.0}
    mse = runs["Net-mse_R4_seed1"]
    assert (mse.loss, mse.swept, mse.condition) == ({"mse": 1.0}, (), "Net-mse_R4")
    # the two networks of one replicate share its seed
    seeds = {r.seed for r in runs.values() if r.name.endswith("_seed1")}
    assert seeds == {1}


def test_adding_a_weight_adds_exactly_seeds_times_accelerations_runs() -> None:
    before = expand_runs(config({"study": STUDY}))
    more = {**STUDY, "sweep": {"dssim": [0.01, 0.1, 1.0, 0.3]}}
    after = expand_runs(config({"study": more}))
    assert set(before) < set(after)
    new = sorted(set(after) - set(before))
    assert new == sorted(f"Net-mse-dssim_dssim0.3_R{r}_seed{s}" for r in (10, 4) for s in (0, 1))
    assert all(before[name] == after[name] for name in before)  # old runs keep name and settings


def test_the_edge_term_is_swept_for_the_networks_that_have_it() -> None:
    networks = {"Net-mse-edge": {"loss": {"mse": 1.0, "edge": 0.1}}}
    study = {"seeds": [3], "accelerations": [8], "sweep": {"edge": [0.05, 0.2]}}
    runs = expand_runs(config({"networks": networks, "study": study}))
    assert sorted(runs) == [
        "Net-mse-dssim_R8_seed3",
        "Net-mse-edge_edge0.05_R8_seed3",
        "Net-mse-edge_edge0.2_R8_seed3",
        "Net-mse_R8_seed3",
    ]


def test_number_labels_are_stable_and_short() -> None:
    assert [number_label(v) for v in (10, 10.0, 4.5, 0.1, 1e-5)] == [
        "10",
        "10",
        "4.5",
        "0.1",
        "1e-05",
    ]


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ({"accelerations": [10]}, r"'study\.seeds'"),
        ({"seeds": [0]}, r"'study\.accelerations'"),
        ({"seeds": [], "accelerations": [10]}, r"'study\.seeds'"),
        ({"seeds": [0, 0], "accelerations": [10]}, r"'study\.seeds'"),
        ({"seeds": [0], "accelerations": [1]}, r"'study\.accelerations\.0'"),
        ({"seeds": [0], "accelerations": [10], "sweep": {"ssim": [1]}}, r"'study\.sweep\.ssim'"),
        ({"seeds": [0], "accelerations": [10], "sweep": {"dssim": [-1]}}, r"'study\.sweep\.dssim"),
        (
            {"seeds": [0], "accelerations": [10], "sweep": {"edge": [0.1]}},
            r"'study\.sweep\.edge': no network's loss has the term 'edge'",
        ),
        (
            {"seeds": [0], "accelerations": [10], "sweep": {"mse": [0.5]}},
            r"'study\.sweep\.mse': the baseline network 'Net-mse'",
        ),
        (
            {"seeds": [0], "accelerations": [10, 10.0000001]},
            r"'study': two weights or accelerations print alike",
        ),
    ],
)
def test_a_bad_study_is_refused_before_any_job_naming_the_key(study: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config({"study": study})


def test_a_swept_weight_that_leaves_no_positive_weight_is_refused() -> None:
    networks = {"Net-dssim": {"loss": {"dssim": 1.0}}}
    study = {"seeds": [0], "accelerations": [10], "sweep": {"dssim": [0.0, 1.0]}}
    with pytest.raises(
        ConfigError, match=r"'study\.sweep \(run Net-dssim_dssim0_R10_seed0\)': every weight is 0"
    ):
        config({"networks": networks, "study": study})


def test_the_study_demo_config_is_valid_and_has_the_promised_size() -> None:
    """config.study-demo.yaml over config.yaml + config.demo.yaml: at least 2 seeds x 3 lambdas x 2
    accelerations, i.e. 12 Net-mse-dssim runs, and Net-mse per seed and acceleration."""
    merged = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in ("config.demo.yaml", "config.study-demo.yaml"):
        merged = deep_merge(merged, yaml.safe_load((REPO / name).read_text()))
    runs = expand_runs(check_config(merged, SCHEMA))
    assert merged["experiment"] == "demo-study"
    assert sum(r.network == "Net-mse-dssim" for r in runs.values()) == 12
    assert sum(r.network == "Net-mse" for r in runs.values()) == 4
