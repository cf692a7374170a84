"""config.check on the source: one source only, a local path that exists, and split sizes checked
against the volumes a BIDS dataset or folder holds, all before any job."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ssimrecon.config.check import check_config
from ssimrecon.errors import ConfigError
from tests.helpers.bids import write_tiny_bids
from tests.helpers.volumes import tiny_volume, write_nifti
from tests.helpers.workspace import REPO, deep_merge

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
#: what an overlay on config.yaml sets besides its local source
LOCAL = {"url": None, "md5": None, "n_subjects": None}


def paper(overrides: dict) -> dict:
    return deep_merge(yaml.safe_load((REPO / "config.yaml").read_text()), overrides)


@pytest.mark.parametrize("layout", ["bids", "folder", "tar"])
def test_a_missing_local_source_is_one_line_naming_key_and_path(
    layout: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no such dir"
    with pytest.raises(ConfigError) as info:
        check_config(paper({"source": {**LOCAL, layout: str(missing)}}), SCHEMA)
    assert str(info.value) == f"config key 'source.{layout}': {missing} does not exist"


@pytest.mark.parametrize(
    ("extra", "key", "other"),
    [
        ({"url": "http://x/IXI.tar"}, "url", "bids"),
        ({"demo": {}}, "demo", "bids"),
        ({"folder": "x"}, "bids", "folder"),  # the first key in order is named
    ],
)
def test_a_local_source_excludes_url_demo_and_the_others(
    extra: dict, key: str, other: str, tmp_path: Path
) -> None:
    config = paper({"source": {**LOCAL, "bids": str(write_tiny_bids(tmp_path / "ds")), **extra}})
    with pytest.raises(ConfigError) as info:
        check_config(config, SCHEMA)
    assert str(info.value) == (
        f"config key 'source.{key}': must be null or absent when 'source.{other}' is set"
    )


def test_the_shipped_url_with_a_local_source_is_refused(tmp_path: Path) -> None:
    """An overlay that forgets ``md5: null`` or ``url: null`` is told which key."""
    with pytest.raises(ConfigError, match=r"^config key 'source.md5': must be null"):
        check_config(paper({"source": {"tar": str(tmp_path)}}), SCHEMA)
    with pytest.raises(ConfigError, match=r"^config key 'source.url': must be null"):
        check_config(paper({"source": {"tar": str(tmp_path), "md5": None}}), SCHEMA)


def test_wrong_kind_of_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'source.tar': .* is not a file$"):
        check_config(paper({"source": {**LOCAL, "tar": str(tmp_path)}}), SCHEMA)
    (tmp_path / "a.tar").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"'source.bids': .* is not a folder$"):
        check_config(paper({"source": {**LOCAL, "bids": str(tmp_path / "a.tar")}}), SCHEMA)


def test_split_sizes_are_checked_against_the_participants_found(tmp_path: Path) -> None:
    """8 T1w volumes of 6 participants, sub-05 excluded: 5 participants; 4 + 1 leave none for
    test, 3 + 1 leave one."""
    root = write_tiny_bids(tmp_path / "ds")
    source = {"source": {**LOCAL, "bids": str(root)}, "exclude": ["sub-05"]}
    with pytest.raises(
        ConfigError, match=r"leave no test subject of the 5 participants found under .* \(7 volumes"
    ):
        check_config(paper({**source, "split": {"n_train": 4, "n_val": 1}}), SCHEMA)
    config = check_config(paper({**source, "split": {"n_train": 3, "n_val": 1}}), SCHEMA)
    assert config["source"]["bids"] == str(root)


@pytest.mark.parametrize("n_subjects", [None, 10])
def test_a_bids_dataset_without_t1w_volumes_is_refused_before_any_job(
    tmp_path: Path, n_subjects: int | None
) -> None:
    """Also when n_subjects is given: the dataset is listed before any job either way."""
    (tmp_path / "ds" / "sub-01" / "anat").mkdir(parents=True)
    source = {**LOCAL, "bids": str(tmp_path / "ds"), "n_subjects": n_subjects}
    with pytest.raises(ConfigError, match=r"^config key 'source.bids': no sub-"):
        check_config(paper({"source": source, "split": {"n_train": 2, "n_val": 2}}), SCHEMA)


def test_the_bids_example_overlay_names_its_path_until_edited(tmp_path: Path) -> None:
    """config.bids-example.yaml on config.yaml: unedited, a one-line error naming the key and the
    placeholder path; pointed at a 30-volume BIDS dataset, valid (20 / 5 / 5)."""
    overlay = yaml.safe_load((REPO / "config.bids-example.yaml").read_text())
    with pytest.raises(ConfigError) as info:
        check_config(paper(overlay), SCHEMA)
    assert str(info.value) == (
        f"config key 'source.bids': {overlay['source']['bids']} does not exist"
    )
    root = tmp_path / "ds"
    for index in range(30):
        write_nifti(
            root / f"sub-{index:02d}/anat/sub-{index:02d}_T1w.nii.gz", tiny_volume((4,) * 3)
        )
    config = check_config(paper(deep_merge(overlay, {"source": {"bids": str(root)}})), SCHEMA)
    assert config["experiment"] == "bids-example" and config["source"]["url"] is None


def test_a_dangling_link_in_the_dataset_is_named_before_any_job(tmp_path: Path) -> None:
    """A git-annex volume that was never fetched is a link to nothing."""
    root = write_tiny_bids(tmp_path / "ds")
    link = root / "sub-09/anat/sub-09_T1w.nii.gz"
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path / "annex" / "missing")
    source = {**LOCAL, "bids": str(root), "n_subjects": 9}
    with pytest.raises(ConfigError, match=rf"^config key 'source.bids': {link}: cannot read"):
        check_config(paper({"source": source, "split": {"n_train": 2, "n_val": 2}}), SCHEMA)
