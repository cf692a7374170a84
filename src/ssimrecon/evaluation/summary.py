"""``ssimrecon summary``: list an experiment's artifacts and print Table 1 (its rules and numbers,
as written to table1.md)."""

from __future__ import annotations

from pathlib import Path

from ssimrecon.errors import SsimreconError

#: artifacts every finished experiment should have, relative to results/<experiment>
ARTIFACTS: tuple[tuple[str, str], ...] = (
    ("Table 1 (CSV)", "table1.csv"),
    ("Table 1 (markdown)", "table1.md"),
    ("Table 1 (HTML)", "table1.html"),
    ("Table 1, validation (CSV)", "table1-validation.csv"),
    ("Table 1, validation (markdown)", "table1-validation.md"),
    ("Table 1, validation (HTML)", "table1-validation.html"),
    ("Figure 2 (PNG)", "figures/figure2.png"),
    ("Figure 2 (PDF)", "figures/figure2.pdf"),
    ("Training curves", "figures/training_curves.png"),
    ("Undersampling mask", "figures/mask_R*.png"),
    ("Snakemake report", "report.html"),
)


def summary_text(results: Path) -> str:
    """The summary: one line per artifact (path, or MISSING) followed by table1.md if present."""
    results = Path(results)
    if not results.is_dir():
        raise SsimreconError(f"results folder not found: {results}")
    width = max(len(label) for label, _ in ARTIFACTS)
    lines = [f"Results in {results}:"]
    for label, rel in ARTIFACTS:
        found = sorted(p for p in results.glob(rel) if p.is_file())
        path = results / rel
        state = ", ".join(map(str, found)) if found else f"{path}  (missing)"
        lines.append(f"  {label:<{width}}  {state}")
    table = results / "table1.md"
    if table.is_file():
        lines += ["", table.read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"
