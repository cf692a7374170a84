"""ssimrecon.atomic: temp file next to the destination, rename on success, cleanup on error."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pandas as pd
import pytest
import torch

from ssimrecon.atomic import atomic_output, write_csv_atomic, write_text_atomic
from ssimrecon.errors import DiskFullError


def test_atomic_output_renames_a_temp_from_the_same_folder(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "vol.nii.gz"
    with atomic_output(out, suffix=".nii.gz") as tmp:
        assert (
            tmp.parent == out.parent
            and tmp.name.startswith(".vol.nii.gz.")
            and tmp.name.endswith(".tmp.nii.gz")
        )
        assert tmp.exists() and not out.exists()
        tmp.write_bytes(b"data")
    assert out.read_bytes() == b"data"
    assert [p.name for p in out.parent.iterdir()] == ["vol.nii.gz"]


def test_atomic_output_error_removes_temp_and_keeps_old_file(tmp_path: Path) -> None:
    out = tmp_path / "x.txt"
    out.write_text("old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_output(out) as tmp:
                tmp.write_text("partial")
                raise exc
        assert out.read_text() == "old"
        assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_atomic_output_applies_umask_like_open(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        path = write_text_atomic(tmp_path / "a.txt", "hi\n")
        with atomic_output(tmp_path / "b.bin", fsync=False) as tmp:
            tmp.write_bytes(b"\0")
        (tmp_path / "plain.txt").write_text("hi\n")
    finally:
        os.umask(old)
    expected = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert expected == 0o640
    assert stat.S_IMODE(path.stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == expected


def test_write_csv_atomic_matches_to_csv(tmp_path: Path) -> None:
    df = pd.DataFrame({"subject": ["IXI002", "IXI012"], "value": [0.1, 1 / 3]})
    out = write_csv_atomic(df, str(tmp_path / "t.csv"))
    assert out == tmp_path / "t.csv"
    assert out.read_bytes() == df.to_csv(index=False, lineterminator="\n").encode()
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_leftover_temps_of_a_killed_writer_are_removed_by_the_next_write(tmp_path: Path) -> None:
    """A writer killed with -9 leaves ``.<name>.<hex>.tmp*``; the next write of that path removes
    it, and nothing else. Mutation tried: not calling remove_stale_temps keeps the leftovers."""
    out = tmp_path / "IXI002.h5"
    leftovers = [tmp_path / ".IXI002.h5.0badf00d.tmp", tmp_path / ".IXI002.h5.12345678.tmp.h5"]
    keep = [
        tmp_path / ".IXI002.h5.notes",
        tmp_path / ".IXI0021.h5.0badf00d.tmp",
        tmp_path / "a.tmp",
    ]
    for p in leftovers + keep:
        p.write_bytes(b"half")
    write_text_atomic(out, "new")
    assert out.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name] + [p.name for p in keep])


def test_full_disk_is_one_line_naming_the_file_and_leaves_nothing(small_disk: Path) -> None:
    """A real full file system (2 MiB tmpfs): torch reports ENOSPC as a RuntimeError raised while
    handling the OSError; atomic_output turns it into DiskFullError naming the destination, and
    neither the destination nor a temporary file is left. Mutation tried: without the chain walk
    the RuntimeError escapes."""
    target = small_disk / "state" / "last.pt"
    with pytest.raises(DiskFullError) as caught:
        with atomic_output(target) as tmp, open(tmp, "wb") as fh:
            torch.save({"w": torch.zeros(1_000_000)}, fh)  # 4 MB into 2 MiB
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"No space left on device writing {target} (")
    assert caught.value.errno == errno.ENOSPC
    assert list(target.parent.iterdir()) == []
    # Room again: the same write succeeds.
    with atomic_output(target) as tmp, open(tmp, "wb") as fh:
        torch.save({"w": torch.zeros(1000)}, fh)
    assert torch.load(target, weights_only=True)["w"].shape == (1000,)
