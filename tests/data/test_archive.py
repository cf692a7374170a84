"""archive.py: safe extraction refuses unsafe members before writing anything."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ssimrecon import cli
from ssimrecon.data.archive import safe_extract
from ssimrecon.errors import ArchiveError
from tests.helpers.volumes import write_tiny_ixi_archive


def _tar_with(path: Path, members: list[tarfile.TarInfo], mode: str = "w") -> Path:
    """A tar holding a harmless file first, then ``members`` (given content b'x' if regular)."""
    with tarfile.open(path, mode) as tar:
        ok = tarfile.TarInfo("good/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        for member in members:
            tar.addfile(member, io.BytesIO(b"x") if member.isreg() else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1
    return info


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


UNSAFE = {
    "dotdot": (_file("../evil"), "'..'"),
    "nested-dotdot": (_file("good/../../evil"), "'..'"),
    "absolute": (_file("/abs"), "absolute"),
    "symlink": (_link("good/link", "/etc/passwd", tarfile.SYMTYPE), "symbolic link"),
    "relative-symlink": (_link("escape", "..", tarfile.SYMTYPE), "symbolic link"),
    "hardlink": (_link("good/hard", "good/ok.txt", tarfile.LNKTYPE), "hard link"),
    "fifo": (_special("good/fifo", tarfile.FIFOTYPE), "FIFO"),
    "chardev": (_special("good/dev", tarfile.CHRTYPE), "device"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_unsafe_member_is_refused_and_nothing_written(
    case: str, suffix: str, tmp_path: Path
) -> None:
    member, reason = UNSAFE[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = _tar_with(
        tmp_path / f"bad{suffix}", [member], "w:gz" if suffix.endswith("gz") else "w"
    )
    with tarfile.open(archive) as tar:  # the crafted name survived writing
        assert tar.getnames()[-1] == member.name
    out_dir = work / "out"
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, out_dir)
    message = str(info.value)
    assert repr(member.name) in message and str(archive) in message and reason in message
    assert list(work.iterdir()) == []  # no out_dir, no staging dir, no evil file next to it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([archive.name, "work"])


def test_extracts_regular_files_and_directories(tmp_path: Path) -> None:
    subjects = ["IXI002", "IXI012"]
    archive = tmp_path / "IXI-T1.tar"
    write_tiny_ixi_archive(archive, subjects)
    out_dir = tmp_path / "nested" / "IXI-T1"
    files = safe_extract(archive, out_dir)
    assert [f.name for f in files] == ["IXI002-Guys-0828-T1.nii.gz", "IXI012-HH-0829-T1.nii.gz"]
    with tarfile.open(archive) as tar:
        for path in files:
            assert path.read_bytes() == tar.extractfile(path.name).read()
    assert sorted(p.name for p in (tmp_path / "nested").iterdir()) == ["IXI-T1"]

    archive2 = _tar_with(tmp_path / "dirs.tar.gz", [_special("emptydir", tarfile.DIRTYPE)], "w:gz")
    files2 = safe_extract(archive2, tmp_path / "dirs")
    assert files2 == [tmp_path / "dirs" / "good" / "ok.txt"]
    assert (tmp_path / "dirs" / "emptydir").is_dir()


def test_non_empty_output_dir_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    write_tiny_ixi_archive(archive, ["IXI002"])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    safe_extract(archive, out_dir)  # empty directory: fine
    keep = out_dir / "IXI002-Guys-0828-T1.nii.gz"
    before = keep.read_bytes()
    with pytest.raises(ArchiveError, match="not empty"):
        safe_extract(archive, out_dir)
    assert keep.read_bytes() == before


def test_corrupt_or_missing_archive(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10)
    with pytest.raises(ArchiveError, match="garbage.tar.gz"):
        safe_extract(garbage, tmp_path / "out")
    with pytest.raises(ArchiveError, match="missing.tar"):
        safe_extract(tmp_path / "missing.tar", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "a.tar.gz"
    write_tiny_ixi_archive(archive, ["IXI002", "IXI013"])
    assert (
        cli.main(["extract", "--archive", str(archive), "--output-dir", str(tmp_path / "d")]) == 0
    )
    assert len(list((tmp_path / "d").glob("*.nii.gz"))) == 2
    bad = _tar_with(tmp_path / "bad.tar", [_file("../evil")])
    assert cli.main(["extract", "--archive", str(bad), "--output-dir", str(tmp_path / "e")]) == 2
    assert "../evil" in capsys.readouterr().err
    assert not (tmp_path / "e").exists() and not (tmp_path / "evil").exists()


def _bomb(path: Path, size: int) -> Path:
    """A .tar.gz of one all-zero file of ``size`` bytes: compresses about 1000x."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("bomb.nii")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    return path


def test_archive_bomb_is_refused_before_writing(tmp_path: Path) -> None:
    """Mutation tried: ``expanded += member.size`` removed -> the bomb is extracted."""
    archive = _bomb(tmp_path / "bomb.tar.gz", 20_000_000)
    assert archive.stat().st_size < 100_000
    with pytest.raises(ArchiveError, match=r"bomb\.tar\.gz.*expands to more than 100 times"):
        safe_extract(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.tar.gz"]


def test_member_count_is_capped(tmp_path: Path) -> None:
    from ssimrecon.data.archive import validated_members

    archive = _tar_with(tmp_path / "many.tar", [_file(f"f{i}") for i in range(5)])
    assert len(validated_members(archive, max_members=6)) == 6
    with pytest.raises(ArchiveError, match=r"many\.tar: more than 5 members"):
        validated_members(archive, max_members=5)


def test_not_enough_disk_space_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    archive = tmp_path / "ixi.tar"
    write_tiny_ixi_archive(archive, ["IXI002", "IXI012"])
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=100))
    with pytest.raises(ArchiveError, match=r"ixi\.tar needs .* GB but .* has only 0\.00 GB free"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_directory_is_not_an_archive(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="is a directory"):
        safe_extract(tmp_path, tmp_path / "out")


def test_stale_staging_folders_are_removed_and_mode_follows_umask(tmp_path: Path) -> None:
    """A killed extraction leaves ``.nifti.extracting-*``; the next one removes it. The output
    folder gets mkdir's mode (0777 minus umask), not mkdtemp's 0700. Mutation tried: dropping the
    chmod leaves the folder 0700."""
    import os

    archive = tmp_path / "ixi.tar"
    write_tiny_ixi_archive(archive, ["IXI002"])
    stale = tmp_path / ".nifti.extracting-abc123"
    (stale / "half").mkdir(parents=True)
    other = tmp_path / ".other.extracting-keep"
    other.mkdir()
    old = os.umask(0o022)
    try:
        safe_extract(archive, tmp_path / "nifti")
    finally:
        os.umask(old)
    assert not stale.exists() and other.exists()
    assert (tmp_path / "nifti").stat().st_mode & 0o777 == 0o755
