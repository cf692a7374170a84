"""Child processes of the benchmark: their environment and a logged, timed run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ssimrecon.training.tcmalloc import REEXEC_MARKER, strip_tcmalloc
from ssimrecon_bench.core import BenchError


def env_for_children(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for subprocesses: the venv first on PATH, without the preload this process added
    (children decide their allocator themselves), plus ``extra``."""
    env = dict(os.environ)
    if env.get(REEXEC_MARKER):
        env = strip_tcmalloc(env)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def tail(text: str | None, n: int = 3000) -> str:
    """The last ``n`` characters of ``text`` ('' for None)."""
    return text[-n:] if text else ""


def run_logged(
    cmd: Sequence[str], cwd: Path, env: dict[str, str], log_path: Path | None, timeout: float
) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``cmd`` (output captured, appended to ``log_path``); returns (process, seconds).

    Raises BenchError when it runs longer than ``timeout`` seconds.
    """
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(cmd)} timed out after {timeout:.0f}s") from exc
    seconds = time.perf_counter() - t0
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as fh:
            fh.write(f"$ {' '.join(cmd)}  (cwd {cwd}, {seconds:.1f}s, exit {proc.returncode})\n")
            fh.write(proc.stdout or "")
            fh.write(proc.stderr or "")
            fh.write("\n")
    return proc, seconds
