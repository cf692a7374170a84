"""The package's stages import only from their own stage and earlier ones (docs/architecture.md,
"Stages"), so no import runs from a later stage into an earlier one (training never imports
evaluation). Every import counts: those inside functions and under TYPE_CHECKING too."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.workspace import REPO

PACKAGE = REPO / "src" / "ssimrecon"
#: the stages, earliest first; "ssimrecon" is the package's own __init__ (its version)
STAGES: tuple[tuple[str, ...], ...] = (
    ("ssimrecon", "errors", "atomic", "checksums", "plain", "device", "progress"),
    ("functional",),
    ("data",),
    ("config",),
    ("kspace",),
    ("nn",),
    ("training",),
    ("evaluation",),
    ("plots",),
    ("reader_study",),
    ("cli",),
)
RANK = {part: rank for rank, parts in enumerate(STAGES) for part in parts}


def _part(module: str) -> str:
    """``ssimrecon.training.loop`` -> ``training``; ``ssimrecon`` -> ``ssimrecon``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every absolute import of ssimrecon or ssimrecon_bench."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0].startswith("ssimrecon")]
    return found


def test_every_module_belongs_to_a_stage() -> None:
    """A new module or subpackage has to be placed in STAGES (and in docs/architecture.md)."""
    assert sorted({_part(m) for m in _modules()} - set(RANK)) == []


def test_no_import_runs_from_a_later_stage_into_an_earlier_one() -> None:
    backwards = []
    for module, path in _modules().items():
        for line, imported in _imports(path):
            if imported.split(".")[0] != "ssimrecon":
                backwards.append(f"{module}:{line} imports {imported} (the benchmark is outside)")
            elif RANK[_part(imported)] > RANK[_part(module)]:
                backwards.append(f"{module}:{line} imports {imported}")
    assert backwards == []


def test_the_checker_sees_a_backward_import(tmp_path: Path) -> None:
    """The import that used to run backwards (training -> evaluation) is one the test flags."""
    source = tmp_path / "state.py"
    source.write_text("def f():\n    from ssimrecon.evaluation.resample import shard_grid\n")
    ((line, imported),) = _imports(source)
    assert (line, imported) == (2, "ssimrecon.evaluation.resample")
    assert RANK[_part(imported)] > RANK[_part("ssimrecon.training.state")]


def test_the_architecture_doc_lists_the_stages_in_this_order() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    order = " < ".join(parts[0] if len(parts) == 1 else "foundation" for parts in STAGES)
    assert order in text
    assert ", ".join(f"`{p}`" for p in STAGES[0][1:]) in text
