"""sources.py and bids.py: the volumes of a BIDS dataset, a folder or a tar, with their ids; the
manifest QC reads; refused layouts name the file."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from ssimrecon import cli
from ssimrecon.data.archive import safe_extract
from ssimrecon.data.qc import build_subjects_table, subjects_table
from ssimrecon.data.sources import (
    folder_files,
    list_source,
    read_manifest,
    source_fingerprint,
    write_manifest,
)
from ssimrecon.errors import VolumeError
from tests.helpers.bids import TINY_BIDS_SITES, TINY_BIDS_T1W, write_tiny_bids
from tests.helpers.volumes import nifti_bytes, tiny_volume, write_nifti


def test_bids_sessions_runs_and_sites_other_files_ignored(tmp_path: Path) -> None:
    """Mutation tried: globbing ``**/*_T1w.nii*`` also takes derivatives/ and sourcedata/."""
    root = write_tiny_bids(tmp_path / "ds")
    files = list_source("bids", root)
    assert {f.source_name: f.subject for f in files} == TINY_BIDS_T1W
    assert [f.file for f in files] == [str(root / f.source_name) for f in files]
    for f in files:
        assert f.site == TINY_BIDS_SITES.get(f.subject.split("_")[0], "unknown"), f


def test_bids_names_that_contradict_their_folders_are_refused(tmp_path: Path) -> None:
    volume = tiny_volume((6, 6, 4))
    cases = {
        "sub-01/anat/sub-02_T1w.nii.gz": "subject differs from its folder sub-01",
        "sub-01/ses-1/anat/sub-01_ses-2_T1w.nii.gz": r"session \(ses-2\) differs .*\(ses-1\)",
        "sub-01/ses-1/anat/sub-01_T1w.nii.gz": r"session \(None\) differs .*\(ses-1\)",
        "sub-01/anat/sub-01_ses-1_T1w.nii.gz": r"session \(ses-1\) differs .*\(None\)",
        "sub-01/anat/sub-01_my scan_T1w.nii.gz": "not a BIDS T1w file name",
    }
    for index, (name, reason) in enumerate(cases.items()):
        root = tmp_path / f"ds{index}"
        write_nifti(root / name, volume)
        with pytest.raises(VolumeError, match=reason) as info:
            list_source("bids", root)
        assert name in str(info.value)


def test_folder_is_recursive_skips_hidden_and_separates_collisions(tmp_path: Path) -> None:
    root = tmp_path / "scans"
    names = [
        "a b.nii.gz",
        "a_b.nii.gz",
        "a-b.nii",
        "site 2/a b.nii.gz",
        "IXI002-Guys-0828-T1.nii.gz",
        ".git/annex/x.nii.gz",
        "._a b.nii.gz",
        "notes.txt",
    ]
    for index, name in enumerate(names):
        path = write_nifti(root / name, tiny_volume((6, 6, 4), seed=index))
        if name.endswith(".nii"):
            path.write_bytes(gzip.decompress(path.read_bytes()))
    files = folder_files(root)
    ids = {f.source_name: f.subject for f in files}
    assert set(ids) == set(names[:5])
    assert ids["a_b.nii.gz"] == "a_b" and ids["IXI002-Guys-0828-T1.nii.gz"] == "IXI002"
    # three names make "a-b": the path that sorts first keeps it, the others get suffixes
    assert ids["a b.nii.gz"] == "a-b"
    assert re.fullmatch(r"a-b-[0-9a-f]{6}", ids["a-b.nii"])
    assert re.fullmatch(r"a-b-[0-9a-f]{6}", ids["site 2/a b.nii.gz"])
    assert len(set(ids.values())) == 5
    assert folder_files(root) == files  # deterministic
    table = subjects_table(files, {"site 2/a b.nii.gz", "a_b"})
    assert table["source_name"].tolist() == ["IXI002-Guys-0828-T1.nii.gz", "a b.nii.gz", "a-b.nii"]


def test_a_tar_of_any_names_is_extracted_safely_then_read(tmp_path: Path) -> None:
    archive = tmp_path / "mine.tar.gz"
    names = ["study/Patient 1 (T1).nii.gz", "study/patient-1-T1.nii.gz", "other/x.nii.gz"]
    with tarfile.open(archive, "w:gz") as tar:
        for index, name in enumerate(names):
            data = nifti_bytes(tiny_volume((6, 6, 4), seed=index))
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "nifti"
    safe_extract(archive, out)
    table = build_subjects_table(out)
    ids = dict(zip(table["source_name"], table["subject"]))
    assert ids["other/x.nii.gz"] == "x"
    assert ids["study/Patient 1 (T1).nii.gz"] == "Patient-1-T1"
    assert ids["study/patient-1-T1.nii.gz"] == "patient-1-T1"
    assert table["file"].tolist() == [str(out / n) for n in table["source_name"]]


def test_empty_or_missing_sources_are_refused_naming_them(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write_nifti(tmp_path / "flat" / "scan.nii.gz", tiny_volume((6, 6, 4)))
    for layout, root, reason in [
        ("folder", tmp_path / "empty", "no \\*.nii.gz or \\*.nii volumes"),
        ("bids", tmp_path / "flat", "no sub-\\*/\\[ses-\\*/\\]anat"),
        ("bids", tmp_path / "nowhere", "is not a folder"),
    ]:
        with pytest.raises(VolumeError, match=reason) as info:
            list_source(layout, root)
        assert str(root) in str(info.value)


def test_fingerprint_follows_the_volumes_only(tmp_path: Path) -> None:
    root = write_tiny_bids(tmp_path / "ds")
    first = source_fingerprint(list_source("bids", root))
    write_nifti(root / "sub-01/anat/sub-01_FLAIR.nii.gz", tiny_volume((6, 6, 4)))
    assert source_fingerprint(list_source("bids", root)) == first
    write_nifti(root / "sub-09/anat/sub-09_T1w.nii.gz", tiny_volume((6, 6, 4)))
    added = source_fingerprint(list_source("bids", root))
    assert added != first
    target = root / "sub-09/anat/sub-09_T1w.nii.gz"
    write_nifti(target, tiny_volume((6, 6, 5)))
    assert source_fingerprint(list_source("bids", root)) != added


def test_manifest_round_trip_and_a_changed_file_is_refused(tmp_path: Path) -> None:
    root = write_tiny_bids(tmp_path / "ds")
    files = list_source("bids", root)
    manifest = write_manifest(files, tmp_path / "manifest.csv")
    assert read_manifest(manifest) == files
    changed = root / "sub-05/anat/sub-05_T1w.nii.gz"
    write_nifti(changed, tiny_volume((6, 6, 7)))
    with pytest.raises(VolumeError, match="changed since") as info:
        read_manifest(manifest)
    assert str(changed) in str(info.value)


def test_cli_manifest_then_qc_records_source_names(tmp_path: Path) -> None:
    root = write_tiny_bids(tmp_path / "ds")
    manifest, subjects = tmp_path / "out" / "manifest.csv", tmp_path / "out" / "subjects.csv"
    argv = ["source-manifest", "--layout", "bids", "--root", str(root), "--output", str(manifest)]
    assert cli.main(argv) == 0
    exclude = '{"exclude": ["sub-05", "sub-03/ses-1/anat/sub-03_ses-1_run-2_T1w.nii.gz"]}'
    argv = ["qc", "--manifest", str(manifest), "--output", str(subjects)]
    assert cli.main([*argv, "--config-json", exclude]) == 0
    table = pd.read_csv(subjects, dtype=str)
    expected = {n: s for n, s in TINY_BIDS_T1W.items() if s not in ("sub-05", "sub-03_ses-1_run-2")}
    assert dict(zip(table["source_name"], table["subject"])) == expected
