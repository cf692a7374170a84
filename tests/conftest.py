"""Shared fixtures: a tiny IXI-shaped archive served over HTTP, and throw-away workflow
workspaces."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.workspace import (
    TINY_SHAPE,
    TINY_SUBJECTS,
    TINY_VOXEL,
    TinySource,
    Workspace,
    make_workspace,
)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinySource]:
    """Build the tiny IXI-shaped archive once and serve it on 127.0.0.1 for the whole session."""
    from ssimrecon.data.demo import build_demo_archive

    serve_dir = tmp_path_factory.mktemp("ixi-server")
    archive = serve_dir / "IXI-T1.tar"
    md5 = build_demo_archive(
        archive, n_subjects=TINY_SUBJECTS, seed=3, shape=TINY_SHAPE, voxel=TINY_VOXEL
    )
    handler = functools.partial(_QuietHandler, directory=str(serve_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TinySource(
            url=f"http://127.0.0.1:{server.server_port}/IXI-T1.tar", md5=md5, archive=archive
        )
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def workspace(tmp_path: Path, tiny_source: TinySource) -> Workspace:
    """A fresh tiny workspace (nothing run yet)."""
    return make_workspace(tmp_path / "ws", tiny_source)


@pytest.fixture(scope="session")
def completed_workspace(
    tmp_path_factory: pytest.TempPathFactory, tiny_source: TinySource
) -> Workspace:
    """A tiny workspace on which the whole workflow has run once (shared: clone it before changing
    it)."""
    ws = make_workspace(tmp_path_factory.mktemp("completed") / "ws", tiny_source)
    ws.snakemake("--cores", "2")
    return ws


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB file system (tmpfs) mounted in tmp_path: writes past it fail with ENOSPC.

    Needs root (CI runs as root, like the SLURM tests); elsewhere the tests that use it skip."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
