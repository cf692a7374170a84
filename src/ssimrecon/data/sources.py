"""The volumes a source offers, before QC reads them: a folder of NIfTI files (any names, the
extracted archive included) or a BIDS dataset, each file with its unique subject id.

Local sources are read in place, never copied or written to. :func:`source_fingerprint` (path,
size and modification time of every file) is what the workflow compares between runs, and the
manifest (:func:`write_manifest`) is the list of files that QC reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pandas as pd

from ssimrecon.atomic import write_csv_atomic
from ssimrecon.data.bids import bids_t1w_files
from ssimrecon.data.ids import NIFTI_SUFFIXES, nifti_stem, parse_ixi_name, safe_id, unique_ids
from ssimrecon.errors import VolumeError

#: local source layouts (config ``source.<layout>``); ``tar`` is extracted, then read as a folder;
#: ``fastmri``: the ``*.h5`` files of ``source.fastmri.dir`` (QC opens them and keeps the
#: configured acquisitions, ``ssimrecon.kspace.fastmri_source``)
LAYOUTS = ("bids", "folder", "fastmri")
#: manifest columns, in order
MANIFEST_COLUMNS = ["subject", "site", "source_name", "file", "size", "mtime_ns"]


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One volume: its unique subject id, site, path relative to the source's root (POSIX) and
    path to read (the root joined with it)."""

    subject: str
    site: str
    source_name: str
    file: str

    def names(self) -> set[str]:
        """What an ``exclude`` entry may name: the id, the relative path, the file name or its
        stem."""
        name = Path(self.source_name).name
        return {self.subject, self.source_name, name, nifti_stem(name)}


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def folder_files(root: Path | str) -> list[SourceFile]:
    """Every ``*.nii.gz`` / ``*.nii`` under ``root``, recursively, sorted; hidden files and
    folders (``.git``, ``._x.nii``) are skipped and symbolic links to folders not followed. Ids:
    IXI names give the IXI id, others the file name's stem made wildcard-safe (made unique)."""
    root = Path(root)
    found = {p for suffix in NIFTI_SUFFIXES for p in root.rglob(f"*{suffix}")}
    relative = sorted(p.relative_to(root) for p in found if not _is_hidden(p.relative_to(root)))
    parsed = [parse_ixi_name(p.name) for p in relative]
    return _with_unique_ids(root, [(p, s, site) for p, (s, site) in zip(relative, parsed)])


def fastmri_files(root: Path | str) -> list[SourceFile]:
    """Every ``*.h5`` directly in ``root`` (not in subfolders; hidden files skipped), sorted by
    name; id: the name's stem made wildcard-safe (``ssimrecon.kspace.fastmri.fastmri_subject``).
    Not opened here: QC validates them and selects the acquisitions."""
    root = Path(root)
    names = sorted(p.name for p in root.glob("*.h5") if not p.name.startswith("."))
    return _with_unique_ids(root, [(Path(n), safe_id(Path(n).stem), "") for n in names])


def _with_unique_ids(root: Path, found: list[tuple[Path, str, str]]) -> list[SourceFile]:
    names = [p.as_posix() for p, _, _ in found]
    try:
        ids = unique_ids([subject for _, subject, _ in found], names)
    except ValueError as exc:
        raise VolumeError(f"{root}: {exc}") from exc
    return [
        SourceFile(subject, site, name, str(root / path))
        for (path, _, site), subject, name in zip(found, ids, names)
    ]


def list_source(layout: str, root: Path | str) -> list[SourceFile]:
    """The volumes of a local source (``layout`` in :data:`LAYOUTS`), sorted by relative path.

    VolumeError naming ``root`` when it is not a folder or holds no volume of the layout."""
    root = Path(root)
    if not root.is_dir():
        raise VolumeError(f"{layout} source {root} is not a folder")
    if layout == "bids":
        files = _with_unique_ids(root, bids_t1w_files(root))
        wanted = "sub-*/[ses-*/]anat/*_T1w.nii[.gz]"
    elif layout == "folder":
        files = folder_files(root)
        wanted = "*.nii.gz or *.nii"
    elif layout == "fastmri":
        files = fastmri_files(root)
        wanted = "fastMRI *.h5"
    else:
        raise ValueError(f"unknown source layout {layout!r}; expected one of {LAYOUTS}")
    if not files:
        raise VolumeError(f"no {wanted} volumes under {layout} source {root}")
    return files


def _stat(path: str) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of the file ``path`` points to."""
    try:
        info = Path(path).stat()
    except OSError as exc:
        raise VolumeError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return info.st_size, info.st_mtime_ns


def source_fingerprint(files: list[SourceFile]) -> str:
    """MD5 of every file's id, relative path, size and modification time: it changes when a file
    is added, removed, renamed or rewritten, and only then (file contents are not read)."""
    listing = [(f.subject, f.source_name, *_stat(f.file)) for f in files]
    return hashlib.md5(json.dumps(listing).encode("utf-8", "surrogateescape")).hexdigest()


def write_manifest(files: list[SourceFile], path: Path | str) -> Path:
    """The manifest CSV (:data:`MANIFEST_COLUMNS`), written atomically."""
    rows = [
        {**dataclasses.asdict(f), **dict(zip(("size", "mtime_ns"), _stat(f.file)))} for f in files
    ]
    return write_csv_atomic(pd.DataFrame(rows, columns=MANIFEST_COLUMNS), path)


def read_manifest(path: Path | str) -> list[SourceFile]:
    """The files of a manifest; VolumeError naming a file whose size or modification time changed
    since the manifest was written (rerun the workflow to take the change in)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise VolumeError(f"cannot read source manifest {path}: {exc}") from exc
    missing = set(MANIFEST_COLUMNS) - set(table.columns)
    if missing:
        raise VolumeError(f"source manifest {path} lacks column(s) {', '.join(sorted(missing))}")
    files = []
    for row in table.itertuples(index=False):
        if _stat(row.file) != (int(row.size), int(row.mtime_ns)):
            raise VolumeError(
                f"{row.file}: changed since {path} was written; run the workflow again"
            )
        files.append(SourceFile(row.subject, row.site, row.source_name, row.file))
    return files
