"""tcmalloc for training and benchmarks: re-execute the process with it preloaded.

* :func:`ensure_tcmalloc` re-executes the current process with Debian's ``libtcmalloc-minimal4``
  preloaded (``LD_PRELOAD``).  glibc's malloc returns the large (>= 128 KiB) activation and gradient
  buffers of every training step to the kernel and page-faults them back in on the next step;
  tcmalloc keeps them: +44 % on a plain fp32 CPU training step, +14 % on the bf16 fast path
  (docs/performance.md).  A preload only works from process start, hence the re-exec.  Nothing
  changes when the library is absent, when it is already loaded, or when ``SSIMRECON_NO_TCMALLOC``
  is set (to anything but empty).  Children (DataLoader workers, subprocesses) inherit the preload.
* :func:`cli_preload` is what a CLI's ``main`` calls: it re-executes only a process that was started
  as ``ssimrecon <command> ...`` (never pytest or a library caller that happens to call ``main``).
* The rest of the CPU fast path lives elsewhere: :mod:`ssimrecon.training.bf16` says whether bf16
  autocast is worth it on this CPU, :mod:`ssimrecon.training.step` applies ``channels_last`` and
  bf16 autocast.

Environment: ``SSIMRECON_TCMALLOC`` overrides the library path (empty: behave as if absent);
``TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD`` is raised (if unset) so tcmalloc does not log big
allocations.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "TCMALLOC_NAMES",
    "tcmalloc_path",
    "tcmalloc_loaded",
    "ensure_tcmalloc",
    "cli_preload",
    "strip_tcmalloc",
]

#: library file names tried, best first (gperftools' minimal build is all we need)
TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
#: set by the re-exec; a process that still lacks tcmalloc with it set does not try again
REEXEC_MARKER = "SSIMRECON_TCMALLOC_REEXEC"
DISABLE_VAR = "SSIMRECON_NO_TCMALLOC"
PATH_VAR = "SSIMRECON_TCMALLOC"
_LIB_DIRS = ("/usr/lib/*-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/lib/*-linux-gnu")


def tcmalloc_path() -> str | None:
    """Absolute path of an installed tcmalloc shared library, or None.

    ``$SSIMRECON_TCMALLOC`` (if set) is used instead of the search: an existing file is returned,
    anything else (including empty) gives None.  Otherwise the interpreter's prefix (conda's
    gperftools) and the system library directories are searched for :data:`TCMALLOC_NAMES`.
    """
    override = os.environ.get(PATH_VAR)
    if override is not None:
        return str(Path(override).resolve()) if override and Path(override).is_file() else None
    dirs = [os.path.join(sys.prefix, "lib")]
    for pattern in _LIB_DIRS:
        dirs += sorted(glob.glob(pattern))
    for name in TCMALLOC_NAMES:
        for directory in dirs:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                return candidate
    return None


def tcmalloc_loaded() -> bool:
    """True if a tcmalloc library is mapped into this process (Linux ``/proc/self/maps``)."""
    try:
        with open("/proc/self/maps") as fh:
            return any("libtcmalloc" in line for line in fh)
    except OSError:
        return False


def _preloaded(env: dict[str, str]) -> bool:
    entries = env.get("LD_PRELOAD", "").replace(" ", ":").split(":")
    return any(os.path.basename(e).startswith("libtcmalloc") for e in entries if e)


def strip_tcmalloc(env: dict[str, str]) -> dict[str, str]:
    """Copy of ``env`` without tcmalloc in ``LD_PRELOAD`` (and without the re-exec marker)."""
    out = dict(env)
    entries = [
        e
        for e in out.get("LD_PRELOAD", "").replace(" ", ":").split(":")
        if e and not os.path.basename(e).startswith("libtcmalloc")
    ]
    if entries:
        out["LD_PRELOAD"] = ":".join(entries)
    else:
        out.pop("LD_PRELOAD", None)
    out.pop(REEXEC_MARKER, None)
    return out


def _current_command() -> list[str]:
    """The command line that started this process (interpreter options and ``-m``/``-c`` kept)."""
    orig = list(getattr(sys, "orig_argv", []) or [])
    if orig:
        return [sys.executable, *orig[1:]]
    return [sys.executable, *sys.argv]


def ensure_tcmalloc(argv: Sequence[str] | None = None) -> None:
    """Re-execute this process with tcmalloc in ``LD_PRELOAD`` (returns only when it does not).

    ``argv``: the command line to execute, program first (default: the one that started this
    process, run by ``sys.executable``).  No-op when ``$SSIMRECON_NO_TCMALLOC`` is set, when no
    library is found, when tcmalloc is already preloaded or loaded, or after one re-exec attempt
    (loop guard).  stdout and stderr are flushed first so nothing printed so far is lost.
    """
    if os.environ.get(DISABLE_VAR):
        return
    if _preloaded(dict(os.environ)) or tcmalloc_loaded() or os.environ.get(REEXEC_MARKER):
        return
    lib = tcmalloc_path()
    if lib is None:
        return
    command = list(argv) if argv is not None else _current_command()
    if not command:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = lib + (":" + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    env[REEXEC_MARKER] = "1"
    env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    executable = command[0]
    if os.sep not in executable:  # a bare program name: resolve it like a shell would
        import shutil

        executable = shutil.which(executable) or executable
    os.execve(executable, command, env)


def cli_preload(command: str) -> None:
    """:func:`ensure_tcmalloc` if this process was started as ``ssimrecon <command> ...``.

    Call first thing in a stage's ``main``: a library caller (tests, notebooks) calling ``main`` is
    never re-executed, because its ``sys.argv`` is not the ``ssimrecon`` entry point.
    """
    argv = list(sys.argv)
    if len(argv) < 2 or argv[1] != command:
        return
    program = os.path.basename(argv[0])
    if program not in ("ssimrecon", "cli.py", "__main__.py") and not program.startswith(
        "ssimrecon"
    ):
        return
    ensure_tcmalloc()
