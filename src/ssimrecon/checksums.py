"""File checksums: the package's one MD5 (downloads, subjects.csv, shard sources, demo tars)."""

from __future__ import annotations

import hashlib
import os


def file_md5(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex MD5 (32 lower-case digits) of a file's bytes, read in ``chunk_size``-byte blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
