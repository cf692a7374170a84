"""envs/: the conda environment installs the package from the running checkout, by construction.

Snakemake (deployment/conda.py) copies the env yaml to .snakemake/conda/<hash>.yaml and creates the
environment from that copy, so a relative pip path would resolve there; it then copies
<env>.post-deploy.sh beside it and runs it inside the environment. These tests run the post-deploy
script the way Snakemake does (a copy, elsewhere, in an activated environment: here a venv, since
conda is not installed on CI) and check what it installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest
import yaml

from tests.helpers.workspace import REPO

pytestmark = pytest.mark.workflow

ENV_FILE = REPO / "envs" / "ssimrecon.yaml"
POST_DEPLOY = REPO / "envs" / "ssimrecon.post-deploy.sh"


def _pip_entries() -> list[str]:
    spec = yaml.safe_load(ENV_FILE.read_text())
    pips = [d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d]
    return [entry for group in pips for entry in group]


def test_env_file_names_packages_only_and_has_its_post_deploy_script() -> None:
    """No entry that is a path: it would resolve against Snakemake's copy in .snakemake/conda/."""
    entries = _pip_entries()
    assert "torch==2.13.0" in entries
    for entry in entries:
        assert not entry.startswith(("-e", "--editable", ".", "/", "file:")), entry
    # Snakemake finds the script by replacing the env file's .yaml suffix.
    assert POST_DEPLOY == ENV_FILE.with_name(ENV_FILE.stem + ".post-deploy.sh")


def _environment(root: Path) -> dict[str, str]:
    """An activated venv (system site packages: setuptools and pip come from there)."""
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(root)
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(root / "bin"), os.environ["PATH"]]),
        "VIRTUAL_ENV": str(root),
        "PYTHONPATH": "",
    }


def _run_copy(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Copy the script as Snakemake does (to <conda-prefix>/<hash>.post-deploy.sh) and run it with
    `sh` from another folder."""
    copy = cwd / "0123abcd_.post-deploy.sh"
    shutil.copyfile(POST_DEPLOY, copy)
    return subprocess.run(
        ["sh", str(copy)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_post_deploy_installs_the_running_checkout_into_the_environment(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    env = _environment(tmp_path / "env")
    before = subprocess.run(
        [str(tmp_path / "env" / "bin" / "python"), "-c", "import ssimrecon"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert before.returncode != 0  # the environment starts without the package

    unset = _run_copy({k: v for k, v in env.items() if k != "SSIMRECON_REPO"}, prefix)
    assert unset.returncode == 1
    assert unset.stderr.strip().startswith("error: SSIMRECON_REPO is not set")

    wrong = _run_copy({**env, "SSIMRECON_REPO": str(tmp_path)}, prefix)
    assert wrong.returncode == 1
    assert f"SSIMRECON_REPO={tmp_path} has no pyproject.toml" in wrong.stderr

    done = _run_copy({**env, "SSIMRECON_REPO": str(REPO)}, prefix)
    assert done.returncode == 0, done.stdout + done.stderr
    where = subprocess.run(
        [
            str(tmp_path / "env" / "bin" / "python"),
            "-c",
            "import ssimrecon; print(ssimrecon.__file__)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()) == REPO / "src" / "ssimrecon" / "__init__.py"
