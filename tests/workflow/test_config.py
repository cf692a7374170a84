"""Config errors stop the run before any job, with a message naming the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ssimrecon.config.check import check_config, check_schema, load_schema
from ssimrecon.errors import ConfigError
from tests.helpers.workspace import REPO, Workspace, deep_merge

SCHEMA_PATH = REPO / "workflow/schemas/config.schema.yaml"
SCHEMA = load_schema(SCHEMA_PATH)


def paper_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_shipped_configs_are_valid() -> None:
    demo = deep_merge(paper_config(), yaml.safe_load((REPO / "config.demo.yaml").read_text()))
    for config in (paper_config(), demo):
        check_config(config, SCHEMA_PATH)  # schema, its defaults, then every cross-key rule


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"split": {"n_train": "many"}}, "split.n_train"),
        ({"mask": {"acceleration": "ten"}}, "mask.acceleration"),
        ({"training": {"epochs": 1.5}}, "training.epochs"),
        ({"figure": {"colour": "red"}}, "figure.colour"),
        ({"unknown_section": 1}, "unknown_section"),
        (
            {"networks": {"Net-x": {"loss": {"ssim_please": 1.0}}}},
            "networks.Net-x.loss.ssim_please",
        ),
    ],
)
def test_schema_errors_name_the_key(overrides: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        check_schema(deep_merge(paper_config(), overrides), SCHEMA)


def test_split_larger_than_subjects_names_the_keys() -> None:
    config = deep_merge(paper_config(), {"split": {"n_train": 600}})
    with pytest.raises(ConfigError, match=r"split\.n_train.*581"):
        check_config(config, SCHEMA_PATH)


def test_paper_split_leaves_a_test_set_and_requires_one() -> None:
    check_config(paper_config(), SCHEMA_PATH)  # 254 + 64 of 581: 263 test subjects
    no_test = deep_merge(paper_config(), {"split": {"n_train": 517}})
    with pytest.raises(ConfigError, match=r"split\.n_train.*split\.n_val.*no test subject.*581"):
        check_config(no_test, SCHEMA_PATH)
    excluded = deep_merge(paper_config(), {"split": {"n_train": 516}, "exclude": ["IXI002"]})
    with pytest.raises(ConfigError, match="no test subject"):
        check_config(excluded, SCHEMA_PATH)
    check_config(deep_merge(paper_config(), {"split": {"n_train": 516}}), SCHEMA_PATH)
    too_many = deep_merge(paper_config(), {"split": {"n_test": 264}})
    with pytest.raises(ConfigError, match=r"split\.n_test.*263"):
        check_config(too_many, SCHEMA_PATH)
    check_config(deep_merge(paper_config(), {"split": {"n_test": 263}}), SCHEMA_PATH)


def test_demo_test_set_can_reach_significance() -> None:
    """Exact two-sided Wilcoxon over n subjects bottoms out at p = 2 / 2**n: n >= 6 for p < 0.05."""
    from scipy.stats import wilcoxon

    demo = deep_merge(paper_config(), yaml.safe_load((REPO / "config.demo.yaml").read_text()))
    split = demo["split"]
    n_test = demo["source"]["demo"]["subjects"] - split["n_train"] - split["n_val"]
    assert (split["n_train"], split["n_val"]) == (9, 3)  # training cost unchanged
    differences = np.arange(1.0, n_test + 1)  # every subject better: the smallest p there is
    assert wilcoxon(differences, method="exact").pvalue < 0.05
    assert wilcoxon(differences[:-1], method="exact").pvalue > 0.05


def test_unknown_baseline_is_refused() -> None:
    config = deep_merge(paper_config(), {"evaluation": {"baseline": "Net-nope"}})
    with pytest.raises(ConfigError, match=r"evaluation\.baseline"):
        check_config(config, SCHEMA_PATH)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"split": {"n_val": "x"}}, "split.n_val"),
        ({"bogus": True}, "bogus"),
        ({"split": {"n_train": 5, "n_val": 5}}, "split.n_train"),
        ({"split": {"n_train": 6, "n_val": 2}}, "no test subject"),
    ],
)
def test_snakemake_stops_before_any_job(
    workspace: Workspace, overrides: dict, expected: str
) -> None:
    workspace.write_config(overrides)
    proc = workspace.snakemake("--cores", "1", check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr + proc.stdout
    assert not workspace.results.exists(), "no job may run with an invalid config"
    assert not (workspace.root / "results").exists()


def test_error_from_a_stage_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from ssimrecon.cli import main

    missing = tmp_path / "nope.csv"
    code = main(
        [
            "split",
            "--subjects",
            str(missing),
            "--config-json",
            '{"n_train": 1, "n_val": 1, "n_test": null, "seed": 0}',
            "--output",
            str(tmp_path / "split.csv"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and str(missing) in err[-1]
    assert not (tmp_path / "split.csv").exists()
