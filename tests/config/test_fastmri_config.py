"""config.check on ``source.fastmri``: one source only, the folder exists, the acquisitions are
fastMRI's, and the data are multicoil axial stacks at their own resolution, before any job."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ssimrecon.config.check import check_config
from ssimrecon.errors import ConfigError
from tests.helpers.fastmri import write_fastmri_file
from tests.helpers.workspace import REPO, deep_merge

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
MULTICOIL = {"forward_model": "multicoil", "coils": 4}


def _config(folder: Path, source: dict | None = None, **prep) -> dict:
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    return deep_merge(
        base,
        {
            "source": {
                "url": None,
                "md5": None,
                "n_subjects": None,
                "fastmri": {"dir": str(folder)},
                **(source or {}),
            },
            "split": {"n_train": 1, "n_val": 1},
            "preprocessing": {**MULTICOIL, **prep},
        },
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for i in range(3):
        write_fastmri_file(tmp_path / f"file_brain_AXT1_{i}.h5", n_slices=1, seed=i)
    return tmp_path


def test_a_fastmri_folder_is_accepted_with_t1_acquisitions_by_default(folder: Path) -> None:
    config = check_config(_config(folder), SCHEMA)
    assert config["source"]["fastmri"]["acquisitions"] == ["AXT1", "AXT1PRE", "AXT1POST"]


@pytest.mark.parametrize(
    ("config_of", "message"),
    [
        (
            lambda f: _config(f, forward_model="magnitude"),
            "config key 'preprocessing.forward_model': source.fastmri holds measured multi-coil",
        ),
        (lambda f: _config(f, downsample=2), "config key 'preprocessing.downsample'"),
        (lambda f: _config(f, readout_axis=0), "config key 'preprocessing.readout_axis'"),
        (
            lambda f: _config(f, {"bids": str(f)}),
            "config key 'source.bids': must be null or absent when 'source.fastmri' is set",
        ),
        (lambda f: _config(f / "missing"), "config key 'source.fastmri.dir': "),
        (
            lambda f: _config(f, {"fastmri": {"dir": str(f), "acquisitions": ["T1"]}}),
            "config key 'source.fastmri.acquisitions.0'",
        ),
    ],
)
def test_refused_with_the_key(folder: Path, config_of, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_config(config_of(folder), SCHEMA)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
