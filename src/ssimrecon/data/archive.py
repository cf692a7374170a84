"""Safe extraction of .tar / .tar.gz archives.

Every member is validated before anything is written: absolute names, ``..`` components, links,
devices and FIFOs are refused (ArchiveError naming member and archive). Validated members are then
extracted with tarfile's ``filter="data"`` as a second guard into a temporary directory next to the
output directory, which is renamed into place only when complete: a killed job never leaves a
half-filled output directory behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ssimrecon.errors import ArchiveError

log = logging.getLogger(__name__)


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` is unsafe to extract, or None if it is a plain file or directory."""
    name = member.name
    if not name or "\x00" in name:
        return "has an empty or invalid name"
    if (
        name.startswith(("/", "\\"))
        or PurePosixPath(name).is_absolute()
        or (len(name) > 1 and name[1] == ":")
    ):
        return "has an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "has a '..' path component"
    if member.issym():
        return f"is a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"is a hard link (to {member.linkname!r})"
    if member.isdev():
        return "is a device or FIFO"
    if not (member.isreg() or member.isdir()):
        return "is not a regular file or directory"
    return None


def validated_members(archive: Path) -> list[tarfile.TarInfo]:
    """All members of ``archive`` after checking each one; ArchiveError at the first unsafe one."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
    except FileNotFoundError as exc:
        raise ArchiveError(f"archive {archive} does not exist") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"cannot read archive {archive}: {exc}") from exc
    for member in members:
        problem = _member_problem(member)
        if problem is not None:
            raise ArchiveError(f"refusing to extract {archive}: member {member.name!r} {problem}")
    return members


def _extract_kwargs() -> dict[str, object]:
    """``filter="data"`` where tarfile supports extraction filters (Python >= 3.10.12 / 3.11.4)."""
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def safe_extract(archive: Path | str, out_dir: Path | str) -> list[Path]:
    """Extract the regular files and directories of ``archive`` into ``out_dir`` (which must not
    exist
    or be empty). Returns the extracted regular files under ``out_dir``, sorted."""
    archive, out_dir = Path(archive), Path(out_dir)
    members = validated_members(archive)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ArchiveError(
            f"output directory {out_dir} already exists and is not empty; remove it first"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.extracting-", dir=out_dir.parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            bar = tqdm(members, desc=f"extract {archive.name}", unit="file", disable=None)
            tar.extractall(staging, members=bar, **_extract_kwargs())
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.replace(staging, out_dir)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"extracting {archive} into {out_dir} failed: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    files = sorted(out_dir / m.name for m in members if m.isreg())
    log.info("extracted %d files from %s into %s", len(files), archive, out_dir)
    return files
