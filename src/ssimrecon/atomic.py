"""Atomic file output: write a temporary file next to the destination, then rename it into place.

Every stage writes its outputs through :func:`atomic_output`, so a reader (or Snakemake after a
killed job) sees either the previous file or the complete new one at the final path, never a
partial file::

    with atomic_output(out, suffix=".nii.gz") as tmp:   # tmp: .NAME.<random>.tmp.nii.gz next to out
        nib.save(image, tmp)                            # any writer that takes a path
    # here ``out`` is the complete file (os.replace); on an exception tmp is removed, ``out``
    # untouched

The temporary file is created in the destination's folder (so ``os.replace`` is an atomic rename on
the same file system) with the permissions a plain ``open`` would give (mode 0o666 minus the umask),
and it is hidden (leading dot) and ends in ``.tmp`` plus the optional ``suffix``, for libraries that
choose the format from the name (nibabel ``.nii.gz``, matplotlib ``.png``/``.pdf``, numpy ``.npz``).
A process killed mid-write leaves at most that hidden temporary file, never a file at the final
path; the next write of the same path removes such leftovers. A full disk (or quota) while
writing becomes a one-line :class:`~ssimrecon.errors.DiskFullError` naming the destination, whatever
the writer (torch, h5py, nibabel) wraps the ``ENOSPC`` in.

Not covered here: ``download.py`` (resumable ``.part`` files) and ``archive.py`` (a staging
directory).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ssimrecon.errors import DiskFullError

if (
    TYPE_CHECKING
):  # pandas is only needed by callers of write_csv_atomic; keep imports of this module light
    import pandas as pd

__all__ = ["atomic_output", "write_text_atomic", "write_csv_atomic"]

_ATTEMPTS = 100
#: errno values that mean "the file system has no room for this write"
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
log = logging.getLogger(__name__)


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the ``.<name>.<8 hex>.tmp*`` files that writers of ``path`` killed mid-write left.

    Safe inside the workflow, where Snakemake runs at most one job per output at a time; callers
    outside it must not write the same path from two processes at once.
    """
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.tmp")
    stale = sorted(p for p in path.parent.glob(f".{path.name}.*.tmp*") if pattern.match(p.name))
    for leftover in stale:
        log.warning("removing %s, left by a write of %s that did not finish", leftover, path)
        leftover.unlink(missing_ok=True)
    return stale


def _create_temp(path: Path, suffix: str) -> Path:
    """Create an empty, new ``.<name>.<random>.tmp<suffix>`` next to ``path`` (umask applied, like
    open)."""
    for _ in range(_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file next to {path}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, suffix: str | None = None, *, fsync: bool = True
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on normal exit move it onto ``path``, on error
    remove it.

    ``path``'s folder is created if needed. The temporary file exists (empty) when yielded; the
    caller writes it by name (overwriting, or removing and recreating it). ``suffix`` (e.g.
    ``".nii.gz"``) is appended to the temporary name for writers that infer the format from it.
    ``fsync`` flushes the data to disk before the rename (turn it off for large files where
    durability after a power loss does not matter, e.g. shards that are cheap to rebuild). Any
    exception, including KeyboardInterrupt and SystemExit, removes the temporary file and
    propagates; ``path`` is then left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = _create_temp(path, suffix or "")
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception) and not isinstance(exc, DiskFullError) and _is_disk_full(exc):
            raise _disk_full_error(path) from exc
        raise


def _is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it was raised from/during is an ENOSPC/EDQUOT OSError
    (torch reports a full disk as a RuntimeError raised while handling the OSError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False


def _disk_full_error(path: Path) -> DiskFullError:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(
        errno.ENOSPC,
        f"No space left on device writing {path} ({free}); nothing was written there, "
        "free some space and rerun",
    )


def write_text_atomic(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_output`); return ``path`` as a
    Path."""
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "w", encoding=encoding) as fh:
        fh.write(text)
    return path


def write_csv_atomic(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``table`` as CSV (no index, UTF-8, ``\\n`` line ends) to ``path`` atomically; return
    ``path``."""
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        table.to_csv(fh, index=False, lineterminator="\n")
    return path
