"""What installs: the claimed Python, the lock of the tested set, and README's words for both.

``requires-python`` must be a version every locked package accepts (snakemake 9 needs 3.11, so
">=3.10" was a promise pip could not keep), the lock must hold the whole dependency closure of the
project's requirements at versions their specifiers allow, and the tests must run on exactly that
set (``make`` installs it).  All read from the installed metadata: no network.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "envs"))
from lock import NOT_LOCKED, canonical  # noqa: E402

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOCK = REPO / "envs" / "requirements.lock"


def _lock() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = Version(version)
    return pins


def _lowest_python() -> str:
    match = re.fullmatch(r">=\s*(\d+\.\d+)", PROJECT["requires-python"].split("#")[0].strip())
    assert match, PROJECT["requires-python"]
    return match.group(1)


def _environment(python: str) -> dict[str, str]:
    env = dict(default_environment())
    env.update(python_version=python, python_full_version=f"{python}.0", extra="")
    return env


def test_every_locked_package_accepts_the_lowest_claimed_python() -> None:
    lowest = Version(_lowest_python())
    refused = {}
    for name in _lock():
        requires = metadata.metadata(name).get("Requires-Python")
        if requires and lowest not in SpecifierSet(requires):
            refused[name] = requires
    assert refused == {}, f"requires-python >={lowest} but these need more: {refused}"


def test_the_lock_pins_every_requirement_and_their_whole_closure() -> None:
    pins, env = _lock(), _environment(_lowest_python())
    direct = [Requirement(r) for r in PROJECT["dependencies"]]
    direct += [
        Requirement(r)
        for extra in ("test", "bench")
        for r in PROJECT["optional-dependencies"][extra]
    ]
    missing, outside = [], []
    todo = list(direct)
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonical(req.name)
        if name in NOT_LOCKED or (req.marker and not req.marker.evaluate(env)) or name in seen:
            continue
        seen.add(name)
        if name not in pins:
            missing.append(str(req))
            continue
        if not req.specifier.contains(pins[name], prereleases=True):
            outside.append(f"{req} (locked {pins[name]})")
        for sub in metadata.requires(name) or []:
            sub_req = Requirement(sub)
            if not sub_req.marker or sub_req.marker.evaluate(env):
                todo.append(sub_req)
    assert missing == [] and outside == [], (missing, outside)


def test_the_tests_run_on_the_locked_versions() -> None:
    installed = {
        canonical(d.metadata["Name"]): Version(d.version.split("+")[0])
        for d in metadata.distributions()
    }
    drift = {
        n: (str(v), str(installed.get(n))) for n, v in _lock().items() if installed.get(n) != v
    }
    assert drift == {}, f"locked vs installed (run `make lock` after changing a pin): {drift}"


def test_readme_states_the_claimed_python() -> None:
    readme = (REPO / "README.md").read_text()
    assert f"Python {_lowest_python()}+" in readme
    assert not re.search(
        r"Python 3\.(?:[0-9])\+", readme.replace(f"Python {_lowest_python()}+", "")
    )
