"""split.py: deterministic, disjoint, order-independent train/val/test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ssimrecon import cli
from ssimrecon.data.bids import participant_of
from ssimrecon.data.split import make_split
from ssimrecon.errors import SsimreconError

SUBJECTS = [f"IXI{n:03d}" for n in range(2, 42)]  # 40 ids


def _members(table: pd.DataFrame, which: str) -> set[str]:
    return set(table.loc[table["split"] == which, "subject"])


def test_counts_disjoint_and_sorted() -> None:
    table = make_split(SUBJECTS, 25, 10, None, seed=7)
    assert list(table.columns) == ["subject", "split"]
    assert list(table["split"]) == ["train"] * 25 + ["val"] * 10 + ["test"] * 5
    assert table["subject"].is_unique and set(table["subject"]) == set(SUBJECTS)
    for _, group in table.groupby("split"):
        assert list(group["subject"]) == sorted(group["subject"])


def test_follows_the_documented_permutation() -> None:
    table = make_split(SUBJECTS, 5, 3, 4, seed=11)
    order = np.random.default_rng(11).permutation(len(SUBJECTS))
    ids = sorted(SUBJECTS)
    assert _members(table, "train") == {ids[i] for i in order[:5]}
    assert _members(table, "val") == {ids[i] for i in order[5:8]}
    assert _members(table, "test") == {ids[i] for i in order[8:12]}
    assert len(table) == 12  # ids beyond n_test are not listed


def test_adding_test_subjects_never_changes_train_or_val() -> None:
    reference = make_split(SUBJECTS, 20, 8, 1, seed=3)
    for n_test in (2, 5, 12, None):
        table = make_split(SUBJECTS, 20, 8, n_test, seed=3)
        assert _members(table, "train") == _members(reference, "train")
        assert _members(table, "val") == _members(reference, "val")
        assert _members(table, "test") >= _members(reference, "test")
    assert len(_members(make_split(SUBJECTS, 20, 8, None, seed=3), "test")) == 12


def test_deterministic_and_input_order_irrelevant() -> None:
    shuffled = list(np.random.default_rng(1).permutation(SUBJECTS))
    a = make_split(SUBJECTS, 20, 8, None, seed=3)
    pd.testing.assert_frame_equal(a, make_split(SUBJECTS, 20, 8, None, seed=3))
    pd.testing.assert_frame_equal(a, make_split(shuffled, 20, 8, None, seed=3))
    assert not a.equals(make_split(SUBJECTS, 20, 8, None, seed=4))


def test_errors_name_the_keys_and_counts() -> None:
    with pytest.raises(SsimreconError) as info:
        make_split(SUBJECTS, 35, 6, None, seed=0)
    message = str(info.value)
    assert all(part in message for part in ("split.n_train", "split.n_val", "35", "6", "40"))
    with pytest.raises(SsimreconError, match="leaves no test subject"):
        make_split(SUBJECTS, 30, 10, None, seed=0)
    with pytest.raises(SsimreconError, match=r"split\.n_test \(8\).* 7 subjects left"):
        make_split(SUBJECTS, 25, 8, 8, seed=0)
    with pytest.raises(SsimreconError, match="split.n_val"):
        make_split(SUBJECTS, 3, 0, None, seed=0)
    with pytest.raises(SsimreconError, match="split.n_test"):
        make_split(SUBJECTS, 3, 3, 0, seed=0)
    with pytest.raises(SsimreconError, match="IXI002"):
        make_split(SUBJECTS + ["IXI002"], 3, 3, None, seed=0)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    subjects = tmp_path / "subjects.csv"
    pd.DataFrame({"subject": SUBJECTS, "site": "Guys"}).to_csv(subjects, index=False)
    output = tmp_path / "out" / "split.csv"
    args = [
        "--subjects",
        str(subjects),
        "--output",
        str(output),
        "--config-json",
        '{"n_train": 6, "n_val": 2, "n_test": null, "seed": 5}',
    ]
    assert cli.main(["split", *args]) == 0
    written = pd.read_csv(output, dtype=str)
    pd.testing.assert_frame_equal(written, make_split(SUBJECTS, 6, 2, None, seed=5))
    assert written["split"].value_counts().to_dict() == {"train": 6, "val": 2, "test": 32}
    bad = ["split"] + args[:5] + ['{"n_train": 60, "n_val": 2, "n_test": null, "seed": 5}']
    assert cli.main(bad) == 2
    assert "split.n_train" in capsys.readouterr().err
    missing = ["split"] + args[:5] + ['{"n_train": 6, "n_val": 2, "seed": 5}']
    assert cli.main(missing) == 2
    assert "split.n_test" in capsys.readouterr().err
    no_column = tmp_path / "nosubject.csv"
    no_column.write_text("id\nIXI002\n")
    assert cli.main(["split", "--subjects", str(no_column)] + args[2:]) == 2
    assert "nosubject.csv" in capsys.readouterr().err


def test_a_participants_sessions_stay_in_one_set() -> None:
    """BIDS sessions and runs of one person never land in two sets; the counts are participants.
    Mutation tried: splitting subject ids (ignoring participants) puts sub-02's sessions apart
    for some seed."""
    subjects = [f"sub-{p:02d}_ses-{s}" for p in range(1, 11) for s in (1, 2, 3)]
    participants = {s: s.split("_")[0] for s in subjects}
    for seed in range(20):
        table = make_split(subjects, 5, 2, None, seed, participants)
        person = table["subject"].map(participants)
        assert person.groupby(table["split"]).nunique().to_dict() == {
            "test": 3,
            "train": 5,
            "val": 2,
        }
        assert (table.groupby(person)["split"].nunique() == 1).all()
        assert len(table) == 30


def test_participant_of_reads_the_bids_folder_only() -> None:
    assert participant_of("sub-01_ses-2", "sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz") == "sub-01"
    assert participant_of("IXI002-Guys-0828", "IXI002-Guys-0828-T1.nii.gz") == "IXI002-Guys-0828"
    assert participant_of("a-b", "sub-x y/scan.nii") == "a-b"  # not a BIDS label
    assert participant_of("scan", "site 1/scan.nii.gz") == "scan"


def test_read_participants_names_the_table_when_it_cannot_be_used(tmp_path: Path) -> None:
    from ssimrecon.data.split import read_participants

    missing = tmp_path / "none.csv"
    with pytest.raises(SsimreconError, match=f"subjects table {missing} does not exist"):
        read_participants(missing)
    no_column = tmp_path / "bad.csv"
    no_column.write_text("id,site\na,b\n")
    with pytest.raises(SsimreconError, match="has no 'subject' column"):
        read_participants(no_column)
    twice = tmp_path / "twice.csv"
    twice.write_text("subject\nIXI002\nIXI003\nIXI002\n")
    with pytest.raises(SsimreconError, match=r"twice.csv: duplicate subject ids: IXI002$"):
        read_participants(twice)
    table = tmp_path / "subjects.csv"
    table.write_text(
        "subject,source_name\nsub-01_ses-1,sub-01/ses-1/anat/x_T1w.nii.gz\nIXI002,IXI002.nii\n"
    )
    assert read_participants(table) == {"sub-01_ses-1": "sub-01", "IXI002": "IXI002"}
