"""Rule reader_study: off by default; enabled on a finished run it adds only its own job, which
writes the readers' page (alone in its folder, blind) and the key."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.plans import planned_jobs
from tests.helpers.workspace import Workspace

pytestmark = pytest.mark.workflow

TINY_READER_STUDY = {"enabled": True, "trials": 4, "repeats": 1, "seed": 7}


def test_an_enabled_reader_study_adds_one_job_whose_page_is_blind(
    completed_workspace: Workspace, tmp_path: Path
) -> None:
    ws = completed_workspace.clone(tmp_path / "ws")
    assert planned_jobs(ws) == Counter()  # off by default: nothing to do
    ws.write_config({"reader_study": TINY_READER_STUDY})
    assert planned_jobs(ws) == Counter(reader_study=1, all=1)
    ws.snakemake("--cores", "1")
    folder = ws.results / "reader_study"
    assert sorted(p.name for p in (folder / "for_readers").iterdir()) == ["reader-study.html"]
    key = pd.read_csv(folder / "key.csv", keep_default_na=False)
    networks = list(ws.config["networks"])
    assert set(key["method"]) == set(networks) and key["trial"].nunique() == 5
    html = (folder / "for_readers" / "reader-study.html").read_text()
    visible = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    for name in [*networks, *set(key["subject"])]:
        assert name not in visible
    assert (ws.results / "logs" / "reader_study.log").exists()


def test_a_method_that_is_no_run_is_refused_naming_the_key(workspace: Workspace) -> None:
    workspace.write_config({"reader_study": {"enabled": True, "methods": ["Net-mse", "Net-x"]}})
    proc = workspace.snakemake("--dry-run", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "reader_study.methods: 'Net-x' is neither a run" in proc.stdout + proc.stderr
