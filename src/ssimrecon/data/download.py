"""Resumable download of one file over http(s)://, file:// or a local path, checked by MD5.

HTTP data is written to ``<dest>.part``; every (re)try asks for ``Range: bytes=<size of .part>-``
and appends when the server answers 206, so a connection cut half-way resumes rather than restarts.
Only a complete file whose checksum matches is renamed to ``dest`` (atomically), so ``dest`` is
never a partial or corrupt download. A mismatching file is kept as ``<dest>.md5-mismatch`` (then
``.md5-mismatch.1``, ...) for inspection. Progress: see :mod:`ssimrecon.progress`.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ssimrecon.checksums import file_md5
from ssimrecon.errors import DownloadError
from ssimrecon.progress import progress

log = logging.getLogger(__name__)

_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
#: HTTP statuses worth retrying (others, e.g. 403/404, fail at once)
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    ssl.SSLError,
)


class _ShortRead(Exception):
    """The server closed the connection before sending all announced bytes."""


def normalize_md5(value: str, source: str = "--md5") -> str:
    """Lower-case, stripped 32-hex-digit checksum; DownloadError naming ``source`` otherwise."""
    text = value.strip().lower()
    if not _MD5_RE.match(text):
        raise DownloadError(f"{source}: {value!r} is not an MD5 checksum (32 hex digits)")
    return text


def read_md5_file(path: Path | str, name: str | None = None) -> str:
    """Checksum from an md5sum-style file (``<hex>  <name>`` lines) or a file holding just the hex.

    With several lines, the one whose name matches ``name`` (a file name) is used.
    """
    path = Path(path)
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise DownloadError(f"cannot read MD5 file {path}: {exc}") from exc
    if not lines:
        raise DownloadError(f"MD5 file {path} is empty")
    if len(lines) == 1:
        return normalize_md5(lines[0][0], str(path))
    for fields in lines:
        if name is not None and len(fields) > 1 and Path(fields[-1].lstrip("*")).name == name:
            return normalize_md5(fields[0], str(path))
    raise DownloadError(f"MD5 file {path} has {len(lines)} lines and none names {name!r}")


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _mismatch_path(dest: Path) -> Path:
    """``<dest>.md5-mismatch``, or ``.md5-mismatch.N`` with the first free N: never overwrites one
    kept before."""
    first = dest.with_name(dest.name + ".md5-mismatch")
    candidate, n = first, 1
    while candidate.exists():
        candidate, n = first.with_name(f"{first.name}.{n}"), n + 1
    return candidate


def _local_source(url: str) -> Path | None:
    """The local file a ``file://`` URL or plain path refers to; None for http(s)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in {"http", "https"}:
        return None
    if scheme == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if scheme and len(scheme) > 1:  # one letter: a Windows drive, i.e. a path
        raise DownloadError(
            f"unsupported URL scheme {scheme!r} in {url} (use http(s)://, file:// or a path)"
        )
    return Path(url)


def _copy_local(source: Path, part: Path, chunk_size: int) -> None:
    """Copy a local file to ``part`` with a progress bar."""
    if not source.is_file():
        raise DownloadError(f"source file {source} does not exist")
    with (
        open(source, "rb") as src,
        open(part, "wb") as out,
        progress(source.stat().st_size, f"copy {source.name}", "B") as bar,
    ):
        while block := src.read(chunk_size):
            out.write(block)
            bar.update(len(block))


def _response_span(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """(start, total size or None) of what the response body holds; 206 must start at ``offset``."""
    if response.status == 206:
        match = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", "").strip())
        if not match:
            raise _ShortRead("206 response without a usable Content-Range")
        start = int(match.group(1))
        total = None if match.group(3) == "*" else int(match.group(3))
        return start, total
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None


def _http_attempt(url: str, part: Path, chunk_size: int, timeout: float) -> None:
    """One request: resume ``part`` from its size (or restart), raise on a short read."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "ssimrecon", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Range not satisfiable: the .part may already hold the whole file.
            match = re.match(r"^bytes\s+\*/(\d+)$", exc.headers.get("Content-Range", "").strip())
            if match and int(match.group(1)) == offset:
                return
            log.info("server refused to resume %s; restarting from zero", part.name)
            part.unlink()
            raise _ShortRead("range not satisfiable") from exc
        raise
    with response:
        start, total = _response_span(response, offset)
        if response.status == 206:
            if start != offset:
                part.unlink(missing_ok=True)
                raise _ShortRead(f"server answered the range from byte {offset} with byte {start}")
            mode, written = "ab", offset
            if offset:
                log.info("resuming %s at byte %d", part.name, offset)
        else:
            if offset:
                log.info("server ignored the range request; restarting %s from zero", part.name)
            mode, written = "wb", 0
        with (
            open(part, mode) as out,
            progress(total, f"download {part.name}", "B", initial=written) as bar,
        ):
            while block := response.read(chunk_size):
                out.write(block)
                written += len(block)
                bar.update(len(block))
    if total is not None and written < total:
        raise _ShortRead(f"connection closed after {written} of {total} bytes")


def _download_http(
    url: str, part: Path, retries: int, backoff: float, chunk_size: int, timeout: float
) -> None:
    """Fetch ``url`` into ``part``, resuming after failures; ``retries`` counts failures in a row
    that made no progress, and the wait doubles after each of them."""
    failures = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            _http_attempt(url, part, chunk_size, timeout)
            return
        except urllib.error.HTTPError as exc:
            if exc.code not in _RETRY_STATUSES:
                raise DownloadError(f"downloading {url}: HTTP {exc.code} {exc.reason}") from exc
            reason = f"HTTP {exc.code}"
        except (_ShortRead, *_NETWORK_ERRORS) as exc:
            reason = str(exc) or type(exc).__name__
        after = part.stat().st_size if part.exists() else 0
        failures = 0 if after > before else failures + 1
        if failures > retries:
            raise DownloadError(
                f"downloading {url} to {part} failed {failures} times in a row without progress: "
                f"{reason}"
            )
        delay = backoff * 2 ** max(failures - 1, 0)
        log.warning("download of %s interrupted (%s); retrying in %.1f s", url, reason, delay)
        time.sleep(delay)


def download(
    url: str,
    dest: Path | str,
    md5: str | None,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    chunk_size: int = 1 << 20,
    timeout: float = 60,
) -> Path:
    """Download ``url`` (http(s)://, file:// or a local path) to ``dest`` and verify its MD5.

    Does nothing if ``dest`` already exists with the expected checksum. A checksum mismatch moves
    the file to ``<dest>.md5-mismatch`` and raises DownloadError naming the file and both checksums.
    """
    dest = Path(dest)
    expected = normalize_md5(md5) if md5 is not None else None
    if dest.is_file() and expected is not None:
        if file_md5(dest, chunk_size) == expected:
            log.info("%s already present with the expected MD5; not downloading", dest)
            return dest
        log.info("%s exists but its MD5 differs; downloading again", dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    source = _local_source(url)
    try:
        if source is not None:
            _copy_local(source, part, chunk_size)
        else:
            _download_http(url, part, retries, backoff, chunk_size, timeout)
    except OSError as exc:  # e.g. no space left on device; network errors are handled inside
        raise DownloadError(
            f"writing {part} failed ({exc.strerror or exc}); the partial file is kept and the "
            "next run resumes from it"
        ) from None
    actual = file_md5(part, chunk_size)
    if expected is not None and actual != expected:
        aside = _mismatch_path(dest)
        os.replace(part, aside)
        raise DownloadError(
            f"MD5 mismatch for {dest} (downloaded from {url}): expected {expected}, got {actual}; "
            f"the file was kept as {aside}"
        )
    os.replace(part, dest)
    log.info("downloaded %s (%d bytes, md5 %s)", dest, dest.stat().st_size, actual)
    return dest
