"""Table 1 of the paper: SSIM, PSNR, relative error and MSE per method, with paired tests.

Input: one per-slice metrics CSV per method (``ssimrecon evaluate``: columns subject, slice, ssim,
psnr, rel_error, mse). Every method must cover exactly the same (subject, slice) pairs.

For each metric ``m`` the table holds
- ``m_mean``, ``m_std``: mean and sample standard deviation (ddof=1) over all slices;
- ``m_subject_mean``, ``m_subject_std``: the same over per-subject means (each subject weighs once);
- ``m_p_vs_<baseline>``: two-sided paired Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) of
  the
  per-subject means of the method against those of the baseline. Subjects, not slices, are the
  independent units, so slices are never used as paired samples. The p-value is NaN for the baseline
  itself, and NaN with an explanation in ``note`` when fewer than 2 subjects or all differences are
  0.
plus ``n_subjects`` and ``n_slices``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from ssimrecon.atomic import write_csv_atomic, write_text_atomic
from ssimrecon.errors import SsimreconError

log = logging.getLogger(__name__)

#: metric columns in table order, with their display names and number formats
METRICS: dict[str, tuple[str, str]] = {
    "ssim": ("SSIM", "{:.4f}"),
    "psnr": ("PSNR (dB)", "{:.2f}"),
    "rel_error": ("Relative error", "{:.4f}"),
    "mse": ("MSE", "{:.3e}"),
}
KEYS = ("subject", "slice")


def _check_frame(name: str, df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in (*KEYS, *METRICS) if c not in df.columns]
    if missing:
        raise SsimreconError(f"metrics of method {name!r} lack columns {missing}")
    if df.empty:
        raise SsimreconError(f"metrics of method {name!r} have no slices")
    df = df.assign(subject=df["subject"].astype(str), slice=df["slice"].astype(int))
    if df.duplicated(list(KEYS)).any():
        raise SsimreconError(f"metrics of method {name!r} list a (subject, slice) pair twice")
    return df


def _slice_set(df: pd.DataFrame) -> set[tuple[str, int]]:
    return set(zip(df["subject"], df["slice"]))


def paired_wilcoxon(a: pd.Series, b: pd.Series) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank p-value of paired samples ``a`` vs ``b`` (aligned by index).

    Returns (p, note); p is NaN with a note when the test is undefined.
    """
    a, b = a.align(b, join="inner")
    if len(a) < 2:
        return math.nan, f"p undefined: {len(a)} subject(s), need >= 2"
    diff = a.to_numpy(float) - b.to_numpy(float)
    if np.all(diff == 0):
        return math.nan, "p undefined: all subject differences are zero"
    return float(wilcoxon(a.to_numpy(float), b.to_numpy(float)).pvalue), ""


def build_table1(metrics: dict[str, pd.DataFrame], baseline: str) -> pd.DataFrame:
    """One row per method (in the order given) with the statistics described in the module
    docstring."""
    if baseline not in metrics:
        raise SsimreconError(f"baseline {baseline!r} is not among the methods {list(metrics)}")
    frames = {name: _check_frame(name, df) for name, df in metrics.items()}
    reference = _slice_set(frames[baseline])
    for name, df in frames.items():
        other = _slice_set(df)
        if other != reference:
            raise SsimreconError(
                f"methods {name!r} and {baseline!r} cover different (subject, slice) sets "
                f"({len(other - reference)} only in {name!r}, {len(reference - other)} only in "
                f"{baseline!r})"
            )
    subject_means = {n: df.groupby("subject")[list(METRICS)].mean() for n, df in frames.items()}
    rows = []
    for name, df in frames.items():
        row: dict[str, object] = {"method": name}
        notes: list[str] = []
        for m in METRICS:
            per_subject = subject_means[name][m]
            row[f"{m}_mean"] = float(df[m].mean())
            row[f"{m}_std"] = float(df[m].std(ddof=1))
            row[f"{m}_subject_mean"] = float(per_subject.mean())
            row[f"{m}_subject_std"] = float(per_subject.std(ddof=1))
            if name == baseline:
                p = math.nan
            else:
                p, note = paired_wilcoxon(per_subject, subject_means[baseline][m])
                if note and note not in notes:
                    notes.append(note)
            row[f"{m}_p_vs_{baseline}"] = p
        row["n_subjects"] = int(df["subject"].nunique())
        row["n_slices"] = int(len(df))
        row["note"] = "; ".join(notes)
        for note in notes:
            log.warning("%s vs %s: %s", name, baseline, note)
        rows.append(row)
    return pd.DataFrame(rows)


def _baseline_of(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns if c.startswith("ssim_p_vs_")]
    if len(cols) != 1:
        raise SsimreconError("table has no single ssim_p_vs_<baseline> column")
    return cols[0][len("ssim_p_vs_") :]


def _fmt(fmt: str, value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else fmt.format(value)


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "—"
    return "p<1e-4" if p < 1e-4 else f"p={p:.4f}"


def table1_markdown(df: pd.DataFrame) -> str:
    """Markdown rendering: slice mean ± std, (subject mean ± std), Wilcoxon p vs the baseline."""
    baseline = _baseline_of(df)
    lines = [
        "# Table 1: reconstruction quality on the validation subjects",
        "",
        "Each cell: mean ± standard deviation over slices; in brackets mean ± standard deviation "
        "over "
        "per-subject means; p: two-sided paired Wilcoxon signed-rank test of per-subject means "
        "against "
        f"{baseline}. Higher SSIM/PSNR and lower relative error/MSE are better.",
        "",
        "| Method | "
        + " | ".join(label for label, _ in METRICS.values())
        + " | subjects | slices |",
        "|---" * (len(METRICS) + 3) + "|",
    ]
    for _, row in df.iterrows():
        cells = []
        for m, (_, fmt) in METRICS.items():
            cell = (
                f"{_fmt(fmt, row[f'{m}_mean'])} ± {_fmt(fmt, row[f'{m}_std'])} "
                f"({_fmt(fmt, row[f'{m}_subject_mean'])} ± {_fmt(fmt, row[f'{m}_subject_std'])})"
            )
            if row["method"] != baseline:
                cell += f" {_fmt_p(row[f'{m}_p_vs_{baseline}'])}"
            cells.append(cell)
        lines.append(
            f"| {row['method']} | "
            + " | ".join(cells)
            + f" | {int(row['n_subjects'])} | {int(row['n_slices'])} |"
        )
    notes = [
        f"{row['method']}: {row['note']}"
        for _, row in df.iterrows()
        if isinstance(row.get("note"), str) and row["note"]
    ]
    n = int(df["n_subjects"].min())
    if 2 <= n <= 10:
        notes.append(
            f"with {n} subjects the smallest attainable two-sided p is 2/2^{n} = {2 / 2**n:.3g}"
        )
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    return "\n".join(lines) + "\n"


def write_table1(df: pd.DataFrame, csv_path: Path, md_path: Path) -> None:
    """Write the table as CSV (full precision) and markdown, each atomically."""
    write_csv_atomic(df, csv_path)
    write_text_atomic(md_path, table1_markdown(df))


def read_metrics_csv(path: Path) -> pd.DataFrame:
    """Read one per-slice metrics CSV, naming the file in errors."""
    path = Path(path)
    if not path.is_file():
        raise SsimreconError(f"metrics file not found: {path}")
    try:
        df = pd.read_csv(path, dtype={"subject": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SsimreconError(f"cannot read metrics file {path}: {exc}") from exc
    missing = [c for c in (*KEYS, *METRICS) if c not in df.columns]
    if missing:
        raise SsimreconError(f"metrics file {path} lacks columns {missing}")
    return df
