"""Write ``envs/requirements.lock``: the exact set of packages the tests ran with (``make lock``).

Every distribution installed in the running environment, as ``name==version``, sorted, except
this package itself and the wheels the Makefile installs ``--no-deps`` (:data:`NOT_LOCKED`).
Local version labels are dropped (``torch==2.13.0+cpu`` -> ``torch==2.13.0``) so that the same
lock installs the CPU build from PyTorch's CPU index and the CUDA build from PyPI.

    python envs/lock.py --output envs/requirements.lock
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

#: installed but not locked: this checkout (installed editable), the wheels the Makefile installs
#: --no-deps (the demo's data-only pydeface and nilearn; piq, whose torchvision requirement would
#: pull a CUDA build) and the installer itself
NOT_LOCKED = frozenset({"ssimrecon", "pydeface", "nilearn", "piq", "pip", "setuptools", "wheel"})


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_set() -> dict[str, str]:
    """Normalised name -> public version (no local label) of every distribution to lock."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"])
        if name not in NOT_LOCKED:
            found[name] = dist.version.split("+", 1)[0]
    return dict(sorted(found.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    python = ".".join(map(str, sys.version_info[:2]))
    lines = [
        "# The tested set of ssimrecon's dependencies (core + test + bench extras), written by",
        f"# `make lock` (envs/lock.py) from a venv on Python {python}; `make` installs it.",
        "# torch: the CPU build from PyTorch's CPU index, the CUDA build from PyPI (README).",
        *(f"{name}=={version}" for name, version in locked_set().items()),
    ]
    args.output.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
