"""Write a reader study's results: the tidy CSV, a Markdown page that states its rules, a figure.

The figure (PNG) has two panels: left, the preference rate of each comparison per reader
(Clopper-Pearson interval) and pooled (cluster bootstrap interval, a diamond), with the 0.5 line
of no preference; right, the pooled mean Likert score of every method per criterion (cluster
bootstrap interval).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ssimrecon.atomic import atomic_output, write_csv_atomic, write_text_atomic
from ssimrecon.reader_study.analysis import POOLED

RULES = """\
Each comparison is `method` vs `versus`, a method against each method listed before it in
`reader_study.methods`. First readings only; repeats serve the consistency rows.

- **Preference**: share of trials in which `method` was chosen over `versus`. Per reader: exact
  Clopper-Pearson 95% interval and exact two-sided binomial test against 0.5. Pooled: subjects are
  the clusters (all readers read the same slices, several per subject), so the interval is a
  cluster bootstrap over subjects (percentile) and the p-value the exact sign test over subjects
  (each subject's majority preference; subjects without one dropped).
- **Likert** (1-5, higher is better on every criterion): mean and sd per method, cluster bootstrap
  interval over subjects. Paired: mean difference `method - versus` within a reader's trial;
  Wilcoxon signed-rank test (Pratt's zero handling) over trials per reader, over subject means
  pooled.
- **Agreement** between readers: Cohen's kappa (2 readers; quadratic-weighted for scores) or
  Fleiss' kappa (3 or more) over the trials every reader answered.
- **Consistency** within a reader: share of repeated trials (shown again with the positions
  rotated) in which the same method was chosen (Clopper-Pearson interval), and of identical scores.
"""


def _interval(row: pd.Series) -> str:
    if math.isnan(row["ci_low"]):
        return ""
    return f"{row['ci_low']:.3f} - {row['ci_high']:.3f}"


#: Markdown column label -> (result column, decimals; None: as it is)
COLUMNS: dict[str, tuple[str, int | None]] = {
    **{name: (name, None) for name in ("reader", "method", "versus", "measure", "test", "note")},
    "readers": ("reader", None),
    "of": ("criterion", None),
    "criterion": ("criterion", None),
    "preferred": ("estimate", 3),
    "mean": ("estimate", 2),
    "sd": ("sd", 2),
    "mean difference": ("estimate", 2),
    "kappa": ("estimate", 3),
    "estimate": ("estimate", 3),
    "95% interval": ("interval", None),
    "p": ("p_value", None),
    **{name: ("n", None) for name in ("trials", "n", "pairs", "items", "repeats")},
    "subjects": ("n_subjects", None),
}
#: per analysis: its heading and its columns (labels of :data:`COLUMNS`)
SECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "preference": (
        "Preference (choice)",
        ("reader", "method", "versus", "preferred", "95% interval", "p", "trials", "subjects")
        + ("note",),
    ),
    "likert": (
        "Likert scores",
        ("reader", "criterion", "method", "mean", "sd", "95% interval", "n", "note"),
    ),
    "likert_paired": (
        "Likert scores, paired",
        ("reader", "criterion", "method", "versus", "mean difference", "95% interval", "p")
        + ("test", "pairs", "note"),
    ),
    "agreement": (
        "Agreement between readers",
        ("readers", "of", "measure", "kappa", "items", "note"),
    ),
    "consistency": (
        "Consistency within a reader (repeated trials)",
        ("reader", "of", "measure", "estimate", "95% interval", "repeats", "note"),
    ),
}


def _cell(row: pd.Series, column: str, digits: int | None) -> str:
    """One Markdown cell: the interval as ``low - high``, p to 3 significant digits, numbers to
    ``digits`` decimals, NaN as empty."""
    if column == "interval":
        return _interval(row)
    value = row[column]
    if isinstance(value, float) and math.isnan(value):
        return ""
    if column == "p_value":
        return f"{value:.3g}"
    return f"{value:.{digits}f}" if digits is not None else str(value)


def _table(rows: pd.DataFrame, labels: tuple[str, ...]) -> str:
    header = "| " + " | ".join(labels) + " |\n|" + "---|" * len(labels) + "\n"
    body = "".join(
        "| " + " | ".join(_cell(row, *COLUMNS[label]) for label in labels) + " |\n"
        for _, row in rows.iterrows()
    )
    return header + body


def markdown(results: pd.DataFrame, *, session: str, readers: list[str], trials: int) -> str:
    """The results as Markdown: what was analysed, the rules, one table per analysis."""
    text = [
        "# Reader study\n\n",
        f"Session {session}: {len(readers)} reader(s) ({', '.join(readers)}), {trials} trials "
        "in the key.\n\n",
        RULES,
    ]
    for analysis, (title, labels) in SECTIONS.items():
        rows = results[results["analysis"] == analysis]
        text.append(f"\n## {title}\n\n")
        text.append(_table(rows, labels) if len(rows) else "Not measured in these answers.\n")
    return "".join(text)


def draw_results(results: pd.DataFrame) -> Figure:
    """The two-panel figure of the module docstring."""
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    preference = results[results["analysis"] == "preference"].reset_index(drop=True)
    y = np.arange(len(preference))[::-1]
    for yi, (_, row) in zip(y, preference.iterrows()):
        pooled = row["reader"] == POOLED
        left.errorbar(
            row["estimate"],
            yi,
            xerr=[[row["estimate"] - row["ci_low"]], [row["ci_high"] - row["estimate"]]],
            fmt="D" if pooled else "o",
            color="black" if pooled else "tab:blue",
            capsize=3,
        )
    left.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    left.set_yticks(y, [f"{r.method} vs {r.versus}: {r.reader}" for r in preference.itertuples()])
    left.set_xlim(0, 1)
    left.set_xlabel("share of trials preferred (95% interval)")
    left.set_title("Preference (choice)")
    likert = results[(results["analysis"] == "likert") & (results["reader"] == POOLED)]
    methods = list(dict.fromkeys(likert["method"]))
    criteria = list(dict.fromkeys(likert["criterion"]))
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        mine = likert[likert["method"] == method].set_index("criterion").reindex(criteria)
        x = np.arange(len(criteria)) + (i - (len(methods) - 1) / 2) * width
        err = [mine["estimate"] - mine["ci_low"], mine["ci_high"] - mine["estimate"]]
        right.bar(x, mine["estimate"], width, yerr=err, capsize=3, label=method)
    right.set_xticks(np.arange(len(criteria)), [c.replace("_", " ") for c in criteria])
    right.set_ylim(1, 5)
    right.set_ylabel("mean score, pooled (95% interval)")
    right.set_title("Likert scores (5 = best)")
    if methods:
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "no scores", ha="center", transform=right.transAxes)
    return fig


def write_results(
    results: pd.DataFrame,
    *,
    csv: Path,
    md: Path,
    png: Path,
    session: str,
    readers: list[str],
    trials: int,
) -> None:
    """Write the CSV, the Markdown and the PNG (each atomically)."""
    write_csv_atomic(results, csv)
    write_text_atomic(md, markdown(results, session=session, readers=readers, trials=trials))
    with atomic_output(Path(png)) as tmp:
        draw_results(results).savefig(tmp, format="png", dpi=120)
