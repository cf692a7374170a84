"""checksums.file_md5: the MD5 of a file's bytes, independent of the block size it reads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ssimrecon.checksums import file_md5


def test_file_md5_equals_hashlib_over_blocks(tmp_path: Path) -> None:
    payload = np.random.default_rng(0).bytes(3 * 4096 + 17)  # a partial last block
    path = tmp_path / "blob.bin"
    path.write_bytes(payload)
    expected = hashlib.md5(payload).hexdigest()
    assert file_md5(path) == expected
    assert file_md5(path, chunk_size=4096) == expected
    assert file_md5(path, chunk_size=1) == expected
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_md5(empty) == "d41d8cd98f00b204e9800998ecf8427e"
