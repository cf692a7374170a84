"""The docs name only tests that exist (docs/reliability.md lists a test per scenario)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers.workspace import REPO

TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_every_test_named_in_the_reliability_doc_exists() -> None:
    text = (REPO / "docs" / "reliability.md").read_text()
    references = TEST_REFERENCE.findall(text)
    rows = re.findall(r"^\| (\d+) \|", text, re.MULTILINE)
    assert len(rows) >= 40 and rows == [str(i) for i in range(1, len(rows) + 1)]
    missing = [
        f"{path}::{name}"
        for path, name in references
        if not (REPO / path).is_file() or name not in _test_names(REPO / path)
    ]
    assert missing == []
    assert f"{len(rows)} scenarios" in (REPO / "README.md").read_text()
