"""Safe extraction of .tar / .tar.gz archives.

Every member is validated before anything is written: absolute names, ``..`` components, links,
devices and FIFOs are refused (ArchiveError naming member and archive). Validated members are then
extracted with tarfile's ``filter="data"`` as a second guard into a temporary directory next to the
output directory, which is renamed into place only when complete: a killed job never leaves a
half-filled output directory behind, and the staging folders a killed job left are removed by the
next extraction into the same output.

Archive bombs are refused before anything is written: at most ``MAX_MEMBERS`` members, at most
``MAX_EXPANSION`` times the archive's size once extracted, and never more than the free disk space.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from ssimrecon.errors import ArchiveError
from ssimrecon.progress import track

log = logging.getLogger(__name__)

#: most members an archive may hold (IXI T1 holds 581)
MAX_MEMBERS = 100_000
#: most bytes extracted per byte of archive (IXI is a .tar of .nii.gz, about 1; a gzip bomb, 1000s)
MAX_EXPANSION = 100.0


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


def validated_members(
    archive: Path, max_members: int = MAX_MEMBERS, max_expansion: float = MAX_EXPANSION
) -> list[tarfile.TarInfo]:
    """All members of ``archive`` after checking each one; ArchiveError at the first unsafe one.

    Members are read one at a time, so a bomb is refused as soon as it passes ``max_members``
    members or ``max_expansion`` x the archive's size in bytes, without reading the rest.
    """
    if archive.is_dir():
        raise ArchiveError(f"archive {archive} is a directory, not a .tar or .tar.gz file")
    members: list[tarfile.TarInfo] = []
    try:
        max_bytes = max_expansion * max(archive.stat().st_size, 1)
        expanded = 0
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                problem = _member_problem(member)
                if problem is not None:
                    raise ArchiveError(
                        f"refusing to extract {archive}: member {member.name!r} {problem}"
                    )
                members.append(member)
                expanded += member.size
                if len(members) > max_members:
                    raise ArchiveError(
                        f"refusing to extract {archive}: more than {max_members} members"
                    )
                if expanded > max_bytes:
                    raise ArchiveError(
                        f"refusing to extract {archive}: it expands to more than {max_expansion:g}"
                        " times its size (an archive bomb?)"
                    )
    except FileNotFoundError as exc:
        raise ArchiveError(f"archive {archive} does not exist") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"cannot read archive {archive}: {exc}") from exc
    return members


def _staging_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}.extracting-"


def remove_stale_staging(out_dir: Path) -> list[Path]:
    """Remove the staging folders that a killed extraction into ``out_dir`` left next to it.

    Snakemake runs at most one job per output at a time, so any such folder is a leftover.
    """
    if not out_dir.parent.is_dir():
        return []
    stale = sorted(out_dir.parent.glob(_staging_prefix(out_dir) + "*"))
    for folder in stale:
        log.warning("removing %s, left by an extraction that did not finish", folder)
        shutil.rmtree(folder, ignore_errors=True)
    return stale


def _check_free_space(archive: Path, out_dir: Path, members: list[tarfile.TarInfo]) -> None:
    needed = sum(m.size for m in members if m.isreg())
    free = shutil.disk_usage(out_dir.parent).free
    if needed > free:
        raise ArchiveError(
            f"extracting {archive} needs {needed / 1e9:.2f} GB but {out_dir.parent} has only "
            f"{free / 1e9:.2f} GB free"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _extract_kwargs() -> dict[str, object]:
    """``filter="data"`` where tarfile supports extraction filters (Python >= 3.10.12 / 3.11.4)."""
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def safe_extract(archive: Path | str, out_dir: Path | str) -> list[Path]:
    """Extract the regular files and directories of ``archive`` into ``out_dir`` (which must not
    exist or be empty). Returns the extracted regular files under ``out_dir``, sorted."""
    archive, out_dir = Path(archive), Path(out_dir)
    members = validated_members(archive)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ArchiveError(
            f"output directory {out_dir} already exists and is not empty; remove it first"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir)
    _check_free_space(archive, out_dir, members)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(out_dir), dir=out_dir.parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            bar = track(members, f"extract {archive.name}", "files")
            tar.extractall(staging, members=bar, **_extract_kwargs())
        # mkdtemp makes the folder 0700; give it the mode a plain mkdir would
        staging.chmod(0o777 & ~_umask())
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
