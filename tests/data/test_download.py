"""download.py against a real local HTTP server that honours Range requests and can cut
connections."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from ssimrecon import cli
from ssimrecon.checksums import file_md5
from ssimrecon.data.download import download, read_md5_file
from ssimrecon.errors import DownloadError

PAYLOAD = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@dataclass
class ServerState:
    """What the handler serves and what it saw."""

    body: bytes = PAYLOAD
    cuts: list[int] = field(
        default_factory=list
    )  # absolute byte offsets; one cut per request, in order
    honour_range: bool = True
    ranges: list[str | None] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    state: ServerState

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        state = self.state
        header = self.headers.get("Range")
        state.ranges.append(header)
        if self.path != "/file.bin":
            self.send_error(404)
            return
        body, start = state.body, 0
        match = re.fullmatch(r"bytes=(\d+)-", header or "")
        if match and state.honour_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        stop = state.cuts.pop(0) if state.cuts else len(body)
        # The full length was announced; stopping early and closing the socket is a cut connection.
        self.wfile.write(body[start : max(stop, start)])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_cut_connection_resumes_with_range(server, tmp_path: Path) -> None:
    base, state = server
    state.cuts = [100_000, 200_000]
    dest = tmp_path / "sub" / "file.bin"
    out = download(f"{base}/file.bin", dest, PAYLOAD_MD5, backoff=0, chunk_size=4096)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert state.ranges == [None, "bytes=100000-", "bytes=200000-"]
    assert not dest.with_name("file.bin.part").exists()


def test_existing_part_file_is_resumed(server, tmp_path: Path) -> None:
    base, state = server
    dest = tmp_path / "file.bin"
    dest.with_name("file.bin.part").write_bytes(PAYLOAD[:12_345])
    download(f"{base}/file.bin", dest, PAYLOAD_MD5, backoff=0)
    assert state.ranges == ["bytes=12345-"]
    assert file_md5(dest) == PAYLOAD_MD5


def test_complete_part_file_is_accepted_after_416(server, tmp_path: Path) -> None:
    base, state = server
    dest = tmp_path / "file.bin"
    dest.with_name("file.bin.part").write_bytes(PAYLOAD)
    download(f"{base}/file.bin", dest, PAYLOAD_MD5, backoff=0)
    assert state.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert dest.read_bytes() == PAYLOAD


def test_server_without_range_support_restarts_from_zero(server, tmp_path: Path) -> None:
    base, state = server
    state.honour_range = False
    state.cuts = [150_000]
    dest = tmp_path / "file.bin"
    download(f"{base}/file.bin", dest, PAYLOAD_MD5, backoff=0, chunk_size=4096)
    assert state.ranges == [None, "bytes=150000-"]
    assert dest.read_bytes() == PAYLOAD


def test_md5_mismatch_keeps_file_aside(server, tmp_path: Path) -> None:
    base, _ = server
    dest = tmp_path / "file.bin"
    wrong = "0" * 32
    with pytest.raises(DownloadError) as info:
        download(f"{base}/file.bin", dest, wrong, backoff=0)
    message = str(info.value)
    assert str(dest) in message and wrong in message and PAYLOAD_MD5 in message
    aside = tmp_path / "file.bin.md5-mismatch"
    assert aside.read_bytes() == PAYLOAD
    assert not dest.exists() and not (tmp_path / "file.bin.part").exists()


def test_existing_correct_file_is_not_downloaded(server, tmp_path: Path) -> None:
    base, state = server
    dest = tmp_path / "file.bin"
    dest.write_bytes(PAYLOAD)
    download(f"{base}/file.bin", dest, PAYLOAD_MD5.upper(), backoff=0)
    assert state.ranges == []


def test_existing_wrong_file_is_replaced(server, tmp_path: Path) -> None:
    base, state = server
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"stale")
    download(f"{base}/file.bin", dest, PAYLOAD_MD5, backoff=0)
    assert len(state.ranges) == 1 and dest.read_bytes() == PAYLOAD


def test_http_404_fails_without_retrying(server, tmp_path: Path) -> None:
    base, state = server
    with pytest.raises(DownloadError, match="404") as info:
        download(f"{base}/missing.bin", tmp_path / "x.bin", None, retries=5, backoff=0)
    assert f"{base}/missing.bin" in str(info.value)
    assert len(state.ranges) == 1


def test_unreachable_server_gives_up_after_retries(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/file.bin"
    with pytest.raises(DownloadError, match="3 times") as info:
        download(url, tmp_path / "file.bin", None, retries=2, backoff=0, timeout=5)
    assert url in str(info.value)


def test_local_path_and_file_url(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    by_path = download(str(source), tmp_path / "a" / "copy.bin", PAYLOAD_MD5)
    by_url = download(source.as_uri(), tmp_path / "b" / "copy.bin", PAYLOAD_MD5)
    assert by_path.read_bytes() == PAYLOAD and by_url.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="missing.bin"):
        download(str(tmp_path / "missing.bin"), tmp_path / "c.bin", None)


def test_read_md5_file_formats(tmp_path: Path) -> None:
    plain = tmp_path / "plain.md5"
    plain.write_text(PAYLOAD_MD5.upper() + "\n")
    listing = tmp_path / "list.md5"
    listing.write_text(f"{'1' * 32}  other.tar\n{PAYLOAD_MD5}  IXI-T1.tar\n")
    assert read_md5_file(plain) == PAYLOAD_MD5
    assert read_md5_file(listing, name="IXI-T1.tar") == PAYLOAD_MD5
    with pytest.raises(DownloadError, match="list.md5"):
        read_md5_file(listing, name="nothing.tar")
    bad = tmp_path / "bad.md5"
    bad.write_text("not-a-checksum  x\n")
    with pytest.raises(DownloadError, match="bad.md5"):
        read_md5_file(bad)


def test_cli_md5_file_and_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "IXI-T1.tar"
    source.write_bytes(PAYLOAD)
    md5_file = tmp_path / "IXI-T1.tar.md5"
    md5_file.write_text(f"{PAYLOAD_MD5}  IXI-T1.tar\n")
    out = tmp_path / "dl" / "IXI-T1.tar"
    argv = ["download", "--url", str(source), "--output", str(out), "--md5-file", str(md5_file)]
    assert cli.main(argv) == 0
    assert out.read_bytes() == PAYLOAD
    assert "warning" not in capsys.readouterr().err
    assert cli.main(["download", "--url", str(source), "--output", str(tmp_path / "n.tar")]) == 0
    assert "checksum" in capsys.readouterr().err
    status = cli.main(
        ["download", "--url", str(source), "--output", str(tmp_path / "w.tar"), "--md5", "f" * 32]
    )
    assert status == 2
    assert "MD5 mismatch" in capsys.readouterr().err


def test_a_second_mismatch_never_overwrites_the_first_kept_file(tmp_path: Path) -> None:
    """Mutation tried: a fixed ``.md5-mismatch`` name loses the first file on the second run."""
    source = tmp_path / "source.bin"
    dest = tmp_path / "out" / "file.bin"
    kept = []
    for content in (b"first corrupt copy", b"second corrupt copy"):
        source.write_bytes(content)
        with pytest.raises(DownloadError, match=r"kept as .*file\.bin\.md5-mismatch"):
            download(str(source), dest, PAYLOAD_MD5)
        kept.append(content)
    assert (dest.parent / "file.bin.md5-mismatch").read_bytes() == kept[0]
    assert (dest.parent / "file.bin.md5-mismatch.1").read_bytes() == kept[1]


def test_disk_full_is_one_line_and_keeps_the_part_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import ssimrecon.data.download as module

    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "file.bin"

    def full_disk(src: Path, part: Path, chunk_size: int) -> None:
        part.write_bytes(PAYLOAD[:1000])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module, "_copy_local", full_disk)
    with pytest.raises(DownloadError, match=r"file\.bin\.part failed \(No space left on device\)"):
        download(str(source), dest, PAYLOAD_MD5)
    assert not dest.exists() and (tmp_path / "file.bin.part").stat().st_size == 1000


def test_progress_lines_in_a_log_when_not_on_a_terminal(
    server, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a Snakemake job stderr is the log file: the download reports bytes, rate and ETA there."""
    import logging

    base, _ = server
    monkeypatch.setenv("SSIMRECON_PROGRESS_SECONDS", "0")
    caplog.set_level(logging.INFO, logger="ssimrecon.progress")
    download(f"{base}/file.bin", tmp_path / "file.bin", PAYLOAD_MD5, chunk_size=65536)
    lines = [m for m in caplog.messages if m.startswith("download file.bin.part: ")]
    assert len(lines) >= 2 and "/s, ETA " in lines[0]
    assert lines[-1].startswith(f"download file.bin.part: {len(PAYLOAD) / 1e3:.2f} kB of")
