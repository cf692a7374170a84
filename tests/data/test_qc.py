"""qc.py: subjects.csv from tiny IXI-named volumes; corrupt and non-3D files fail naming the
file."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ssimrecon import cli
from ssimrecon.data.archive import safe_extract
from ssimrecon.data.qc import COLUMNS, VOLUME_COLUMNS, build_subjects_table, inspect_volume
from ssimrecon.errors import VolumeError
from tests.helpers.volumes import (
    corrupt_nifti_bytes,
    ixi_file_name,
    tiny_volume,
    write_nifti,
    write_tiny_ixi_archive,
)


def test_inspect_volume_describes_the_file(tmp_path: Path) -> None:
    data = tiny_volume((12, 10, 6), seed=3)
    data[0, 0, 0], data[1, 0, 0] = -5.0, 1234.5
    path = write_nifti(tmp_path / "IXI017-IOP-0898-T1.nii.gz", data, zooms=(0.9375, 0.9375, 1.2))
    row = inspect_volume(path)
    assert list(row) == VOLUME_COLUMNS
    assert row["shape"] == "12x10x6"
    assert row["voxel_size"] == "0.9375x0.9375x1.2"
    assert row["orientation"] == "".join(nib.aff2axcodes(nib.load(path).affine)) == "PSR"
    assert row["intensity_min"] == pytest.approx(-5.0) and row["intensity_max"] == pytest.approx(
        1234.5
    )
    assert row["md5"] == hashlib.md5(path.read_bytes()).hexdigest()


def test_inspect_volume_rejects_bad_files(tmp_path: Path) -> None:
    truncated = tmp_path / "IXI003-Guys-0829-T1.nii.gz"
    truncated.write_bytes(corrupt_nifti_bytes())
    garbage = tmp_path / "IXI004-Guys-0830-T1.nii.gz"
    garbage.write_bytes(os.urandom(200))
    four_d = write_nifti(tmp_path / "IXI005-HH-0831-T1.nii.gz", tiny_volume((6, 6, 4, 2)))
    nan = tiny_volume((6, 6, 4))
    nan[2, 2, 2] = np.nan
    with_nan = write_nifti(tmp_path / "IXI006-HH-0832-T1.nii.gz", nan)
    for path, reason in [
        (truncated, "cannot read"),
        (garbage, "cannot read"),
        (four_d, "3D"),
        (with_nan, "NaN"),
    ]:
        with pytest.raises(VolumeError, match=reason) as info:
            inspect_volume(path)
        assert str(path) in str(info.value)


@pytest.fixture
def extracted(tmp_path: Path) -> Path:
    """Three good subjects and a corrupt one, extracted from a tiny IXI archive."""
    archive = tmp_path / "IXI-T1.tar"
    write_tiny_ixi_archive(archive, ["IXI012", "IXI002", "IXI013", "IXI014"], corrupt={"IXI013"})
    out = tmp_path / "IXI-T1"
    safe_extract(archive, out)
    return out


def test_corrupt_volume_fails_naming_file(extracted: Path) -> None:
    with pytest.raises(VolumeError) as info:
        build_subjects_table(extracted, set())
    assert ixi_file_name("IXI013", 2) in str(info.value)


def test_exclude_skips_without_opening(extracted: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ssimrecon.data.qc"):
        table = build_subjects_table(extracted, {"IXI013", "IXI999"})
    assert list(table.columns) == COLUMNS
    assert list(table["subject"]) == ["IXI002", "IXI012", "IXI014"]  # sorted by file name
    assert (
        "IXI013" in caplog.text and "IXI999" in caplog.text
    )  # skipped, and unmatched entry warned
    for _, row in table.iterrows():
        assert row["md5"] == hashlib.md5(Path(row["file"]).read_bytes()).hexdigest()
        assert row["shape"] == "16x16x8" and row["orientation"] == "PSR"
    by_name = build_subjects_table(extracted, {ixi_file_name("IXI013", 2)})
    pd.testing.assert_frame_equal(by_name, table)


def test_relative_input_dir_gives_relative_paths(
    extracted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(extracted.parent)
    table = build_subjects_table(Path("IXI-T1"), {"IXI013"})
    assert all(f.startswith("IXI-T1" + os.sep) for f in table["file"])


def test_duplicate_subject_gets_a_suffix_and_empty_dir_fails(tmp_path: Path) -> None:
    """The same IXI id in two files: the first path keeps it, the other is told apart by its
    path (see tests/data/test_ids.py); each row records where it came from."""
    write_nifti(tmp_path / "a" / "IXI002-Guys-0828-T1.nii.gz", tiny_volume((6, 6, 4)))
    write_nifti(tmp_path / "b" / "IXI002-HH-0900-T1.nii.gz", tiny_volume((6, 6, 4)))
    table = build_subjects_table(tmp_path, set())
    assert table["subject"][0] == "IXI002" and table["site"].tolist() == ["Guys", "HH"]
    assert re.fullmatch(r"IXI002-[0-9a-f]{6}", table["subject"][1])
    assert table["source_name"].tolist() == [
        "a/IXI002-Guys-0828-T1.nii.gz",
        "b/IXI002-HH-0900-T1.nii.gz",
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeError, match="empty"):
        build_subjects_table(tmp_path / "empty", set())
    with pytest.raises(VolumeError, match="nowhere"):
        build_subjects_table(tmp_path / "nowhere", set())


def test_cli_writes_csv(
    extracted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "results" / "subjects.csv"
    argv = ["qc", "--input-dir", str(extracted), "--output", str(output), "--config-json"]
    argv.append('{"exclude": []}')
    assert cli.main(argv) == 2
    assert ixi_file_name("IXI013", 2) in capsys.readouterr().err
    assert not output.exists()
    assert cli.main(argv[:-1] + ['{"exclude": ["IXI013"]}']) == 0
    table = pd.read_csv(output, dtype={"md5": str})
    assert list(table.columns) == COLUMNS
    assert "IXI013" not in set(table["subject"]) and len(table) == 3
    assert sorted(p.name for p in output.parent.iterdir()) == ["subjects.csv"]  # no temp file left


def test_uncompressed_nifti_is_read_not_ignored(tmp_path: Path) -> None:
    """Mutation tried: globbing only ``*.nii.gz`` drops the .nii subject."""
    write_nifti(tmp_path / "IXI002-Guys-0828-T1.nii.gz", tiny_volume(seed=1))
    plain = tmp_path / "sub-07_T1w.nii"
    nib.save(nib.Nifti1Image(tiny_volume(seed=2), np.eye(4)), plain)
    table = build_subjects_table(tmp_path)
    assert list(table["subject"]) == ["IXI002", "sub-07_T1w"]
    assert table.loc[1, "file"] == str(plain)


def test_volumes_that_would_fail_later_are_refused_naming_the_file(tmp_path: Path) -> None:
    """All-zero, all-negative and single-slice volumes fail at QC, not in the shard stage."""
    cases = {
        "zero": (np.zeros((6, 6, 4), np.float32), "no voxel above 0"),
        "negative": (-tiny_volume((6, 6, 4)), "no voxel above 0"),
        "single-slice": (tiny_volume((6, 6, 1)), "at least 2 voxels per axis"),
    }
    for name, (data, reason) in cases.items():
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        with pytest.raises(VolumeError, match=reason) as info:
            inspect_volume(path)
        assert str(path) in str(info.value)


def test_huge_header_is_refused_before_reading(tmp_path: Path) -> None:
    """A header claiming 2000^3 voxels gets a one-line error, not a MemoryError traceback."""
    small = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4))
    small.header.set_data_shape((2000, 2000, 2000))
    path = tmp_path / "huge.nii"
    path.write_bytes(small.header.binaryblock + b"\0" * 4 + b"\1" * 64)
    with pytest.raises(VolumeError, match=r"huge\.nii: header declares 8000000000 voxels"):
        inspect_volume(path)
