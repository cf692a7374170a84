"""Table 1: SSIM, PSNR, relative error and MSE per method, region and slice set, with paired tests.

Inputs per method: the per-slice CSV and the per-volume CSV of ``ssimrecon evaluate`` (columns in
:mod:`ssimrecon.evaluation.evaluate`).  Every method must cover the same (subject, slice, region)
rows with the same slice filter, and the same volumes.

Output: a tidy frame, one row per method x convention x region x slice set x metric (``COLUMNS``):

- ``convention`` ``paper``: per-slice metrics, ``region`` ``frame`` or ``head``, ``slices``
  ``filtered`` (``passes_filter``) or ``all``; ``mean``/``sd``: over the slices (sd with ddof=1);
  ``subject_mean``/``subject_sd``: over per-subject means (each subject weighs once).  Slices where
  a region is unscored (NaN) are left out; ``n_slices`` counts the slices used.
- ``convention`` ``fastmri``: per-volume metrics (region ``frame``, slices ``all``); mean and sd
  over volumes (one per subject, so ``subject_mean`` equals ``mean``); ``n_slices`` sums the
  volumes' slices.
- ``p_vs_baseline``: two-sided paired Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) of the
  method's per-subject means against those of ``baseline``, over subjects (never over slices); NaN
  for the baseline itself, and NaN with an explanation in ``note`` when fewer than 2 subjects or all
  differences are 0.

The Markdown and HTML renderings state the rules the numbers follow (split, slice filter, regions,
data_range, MSE units, SSIM definitions, statistics) beside the numbers.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from ssimrecon.atomic import write_csv_atomic, write_text_atomic
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.evaluate import REGIONS, SLICE_COLUMNS, VOLUME_COLUMNS
from ssimrecon.functional.metrics import FASTMRI_METRICS, FASTMRI_WINDOW, METRICS
from ssimrecon.functional.regions import HEAD_DILATION, HEAD_THRESHOLD

log = logging.getLogger(__name__)

COLUMNS = (
    "split",
    "method",
    "convention",
    "region",
    "slices",
    "metric",
    "mean",
    "sd",
    "subject_mean",
    "subject_sd",
    "p_vs_baseline",
    "baseline",
    "n_subjects",
    "n_slices",
    "note",
)
SLICE_SETS = ("filtered", "all")
#: display name and number format of each metric, per convention
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "paper": {
        "ssim": ("SSIM", "{:.4f}"),
        "psnr": ("PSNR (dB)", "{:.2f}"),
        "rel_error": ("Relative error", "{:.4f}"),
        "mse": ("MSE", "{:.3e}"),
    },
    "fastmri": {
        "ssim": (f"SSIM ({FASTMRI_WINDOW}x{FASTMRI_WINDOW} uniform)", "{:.4f}"),
        "psnr": ("PSNR (dB)", "{:.2f}"),
        "nmse": ("NMSE", "{:.4f}"),
        "mse": ("MSE", "{:.3e}"),
    },
}
REGION_TITLES = {"frame": "Whole frame", "head": "Head mask"}
SPLIT_NAMES = {"test": "test", "val": "validation", "train": "training"}
SLICE_KEYS = ("subject", "slice", "region")


@dataclasses.dataclass(frozen=True)
class TableRules:
    """What the table was computed under: the split's name, the baseline network, the slice filter
    threshold (``evaluation.min_signal_fraction``), the intensity scale's percentile
    (``preprocessing.scale_percentile``) and the number of seeds each network's metrics were
    averaged over (1 without a study; see :mod:`ssimrecon.evaluation.study_results`)."""

    split: str
    baseline: str
    min_signal_fraction: float
    scale_percentile: float
    seeds: int


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


def _check_slices(name: str, df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    missing = [c for c in SLICE_COLUMNS if c not in df.columns]
    if missing:
        raise SsimreconError(f"metrics of method {name!r} lack columns {missing}")
    if df.empty:
        raise SsimreconError(f"metrics of method {name!r} have no slices")
    df = df.assign(
        subject=df["subject"].astype(str),
        slice=df["slice"].astype(int),
        passes_filter=df["passes_filter"].astype(bool),
    )
    if df.duplicated(list(SLICE_KEYS)).any():
        raise SsimreconError(f"metrics of method {name!r} list a (subject, slice, region) twice")
    unknown = sorted(set(df["region"]) - set(REGIONS))
    if unknown:
        raise SsimreconError(f"metrics of method {name!r} have unknown regions {unknown}")
    if not df["passes_filter"].equals(df["slice_signal"] >= threshold):
        raise SsimreconError(
            f"metrics of method {name!r} were filtered with another threshold than "
            f"evaluation.min_signal_fraction = {threshold}; rerun its evaluation"
        )
    return df


def _check_volumes(name: str, df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in VOLUME_COLUMNS if c not in df.columns]
    if missing:
        raise SsimreconError(f"volume metrics of method {name!r} lack columns {missing}")
    df = df.assign(subject=df["subject"].astype(str))
    if df.empty or df["subject"].duplicated().any():
        raise SsimreconError(f"volume metrics of method {name!r} need one row per subject")
    return df


def _same_rows(name: str, keys: set, baseline: str, reference: set, what: str) -> None:
    if keys != reference:
        raise SsimreconError(
            f"methods {name!r} and {baseline!r} cover different {what} ({len(keys - reference)} "
            f"only in {name!r}, {len(reference - keys)} only in {baseline!r})"
        )


def _stat_row(
    values: pd.DataFrame, metric: str, base: pd.Series | None
) -> tuple[dict[str, object], pd.Series]:
    """Statistics of one metric over ``values`` (columns subject, metric; NaN rows dropped)."""
    used = values[["subject", metric]].dropna()
    per_subject = used.groupby("subject")[metric].mean()
    row: dict[str, object] = {
        "mean": float(used[metric].mean()),
        "sd": float(used[metric].std(ddof=1)),
        "subject_mean": float(per_subject.mean()),
        "subject_sd": float(per_subject.std(ddof=1)),
        "p_vs_baseline": math.nan,
        "n_subjects": int(per_subject.size),
        "note": "",
    }
    if base is not None:
        row["p_vs_baseline"], row["note"] = paired_wilcoxon(per_subject, base)
    return row, per_subject


def build_table1(
    slices: dict[str, pd.DataFrame], volumes: dict[str, pd.DataFrame], rules: TableRules
) -> pd.DataFrame:
    """The tidy table (``COLUMNS``) of the methods in the order given; see the module docstring."""
    baseline = rules.baseline
    if baseline not in slices:
        raise SsimreconError(f"baseline {baseline!r} is not among the methods {list(slices)}")
    if set(volumes) != set(slices):
        raise SsimreconError(
            f"per-slice methods {list(slices)} and per-volume methods {list(volumes)} differ"
        )
    frames = {n: _check_slices(n, df, rules.min_signal_fraction) for n, df in slices.items()}
    vols = {n: _check_volumes(n, df) for n, df in volumes.items()}
    keyed = {
        n: set(zip(df["subject"], df["slice"], df["region"], df["passes_filter"]))
        for n, df in frames.items()
    }
    for name in frames:
        _same_rows(name, keyed[name], baseline, keyed[baseline], "(subject, slice) rows")
        _same_rows(
            name, set(vols[name]["subject"]), baseline, set(vols[baseline]["subject"]), "volumes"
        )
    order = [baseline] + [n for n in frames if n != baseline]  # baseline first: its subject means
    base_means: dict[tuple, pd.Series] = {}
    rows: list[dict[str, object]] = []
    for name in order:
        df = frames[name]
        for region in REGIONS:
            in_region = df[df["region"] == region]
            for which in SLICE_SETS:
                chosen = in_region[in_region["passes_filter"]] if which == "filtered" else in_region
                for metric in METRICS:
                    key = ("paper", region, which, metric)
                    row, means = _stat_row(chosen, metric, base_means.get(key))
                    base_means.setdefault(key, means)
                    row["n_slices"] = int(chosen[metric].notna().sum())
                    rows.append(
                        {
                            "method": name,
                            "convention": "paper",
                            "region": region,
                            "slices": which,
                            "metric": metric,
                            **row,
                        }
                    )
        for metric in FASTMRI_METRICS:
            key = ("fastmri", "frame", "all", metric)
            row, means = _stat_row(vols[name], metric, base_means.get(key))
            base_means.setdefault(key, means)
            row["n_slices"] = int(vols[name]["slices"].sum())
            rows.append(
                {
                    "method": name,
                    "convention": "fastmri",
                    "region": "frame",
                    "slices": "all",
                    "metric": metric,
                    **row,
                }
            )
    table = pd.DataFrame(rows).assign(split=rules.split, baseline=baseline)
    rank = {n: i for i, n in enumerate(frames)}
    table = table.sort_values("method", key=lambda m: m.map(rank), kind="stable")
    for note in sorted(set(table["note"]) - {""}):
        log.warning("vs %s: %s", baseline, note)
    return table.reset_index(drop=True)[list(COLUMNS)]


# ---------------------------------------------------------------- rendering


@dataclasses.dataclass(frozen=True)
class _Section:
    """One table of the rendering: heading, header cells, body rows."""

    title: str
    header: list[str]
    rows: list[list[str]]


def _fmt(fmt: str, value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else fmt.format(value)


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "—"
    return "p<1e-4" if p < 1e-4 else f"p={p:.4f}"


def split_name(split: str) -> str:
    """The split as prose: ``test`` -> test, ``val`` -> validation."""
    return SPLIT_NAMES.get(split, split)


def table_title(split: str) -> str:
    """``Table 1: ... on the test subjects``; other splits are named in the title."""
    if split == "test":
        return "Table 1: reconstruction quality on the test subjects"
    return f"Table 1 ({split_name(split)} split): reconstruction quality on the " + (
        f"{split_name(split)} subjects"
    )


def _cell(row: pd.Series, fmt: str, baseline: str) -> str:
    text = (
        f"{_fmt(fmt, row['mean'])} ± {_fmt(fmt, row['sd'])} "
        f"({_fmt(fmt, row['subject_mean'])} ± {_fmt(fmt, row['subject_sd'])})"
    )
    if row["method"] != baseline:
        text += f" {_fmt_p(row['p_vs_baseline'])}"
    return text


def _sections(df: pd.DataFrame, rules: TableRules) -> list[_Section]:
    methods = list(dict.fromkeys(df["method"]))
    out = []
    for region in REGIONS:
        labels = LABELS["paper"]
        rows = []
        for method in methods:
            for which in SLICE_SETS:
                part = df[
                    (df["method"] == method)
                    & (df["convention"] == "paper")
                    & (df["region"] == region)
                    & (df["slices"] == which)
                ].set_index("metric")
                name = f"filter ≥ {rules.min_signal_fraction:g}" if which == "filtered" else "all"
                cells = [_cell(part.loc[m], labels[m][1], rules.baseline) for m in labels]
                first = part.iloc[0]
                rows.append(
                    [method, name, *cells, str(first["n_subjects"]), str(first["n_slices"])]
                )
        header = ["Method", "Slices", *(label for label, _ in labels.values()), "subjects"]
        out.append(_Section(REGION_TITLES[region], [*header, "slices"], rows))
    labels = LABELS["fastmri"]
    rows = []
    for method in methods:
        part = df[(df["method"] == method) & (df["convention"] == "fastmri")].set_index("metric")
        cells = [_cell(part.loc[m], labels[m][1], rules.baseline) for m in labels]
        first = part.iloc[0]
        rows.append([method, *cells, str(first["n_subjects"]), str(first["n_slices"])])
    header = ["Method", *(label for label, _ in labels.values()), "volumes", "slices"]
    out.append(_Section("fastMRI convention (per volume, whole frame, every slice)", header, rows))
    return out


def table_rules_text(df: pd.DataFrame, rules: TableRules) -> list[str]:
    """The rules the numbers follow, one sentence group per item (plain text, no markup)."""
    mine = df[df["method"] == rules.baseline]
    n = mine.set_index(["convention", "region", "slices", "metric"])["n_slices"]
    n_subjects = int(mine["n_subjects"].max())
    total = int(n[("fastmri", "frame", "all", "ssim")])  # every slice of every volume
    kept = int(n[("paper", "frame", "filtered", "ssim")])
    unscored = {r: total - int(n[("paper", r, "all", "ssim")]) for r in REGIONS}
    left_out = 100.0 * (total - kept) / total if total else 0.0
    seeds = (
        [
            f"Seeds: every network was trained {rules.seeds} times (study.seeds); its per-slice "
            f"and per-volume metrics are averaged over the {rules.seeds} seeds before any "
            "statistic, so each cell is a mean over seeds and p compares per-subject means of "
            "seed-averaged slices."
        ]
        if rules.seeds > 1
        else []
    )
    return [
        f"Split: {split_name(rules.split)} subjects (split '{rules.split}' of split.csv), "
        f"{n_subjects} subjects, the same slices for every method.",
        *seeds,
        f"Slice filter: 'filter' rows use the slices where at least "
        f"{rules.min_signal_fraction:g} of the reference pixels exceed 0.1 x data_range "
        f"(evaluation.min_signal_fraction = {rules.min_signal_fraction:g}): {kept} of {total} "
        f"slices ({left_out:.1f}% left out); 'all' rows, beside them, score every slice.",
        f"Regions: whole frame = every pixel; head mask = reference > {HEAD_THRESHOLD:g} x "
        f"data_range, holes filled, dilated by {HEAD_DILATION} pixels (city-block), from the "
        f"reference alone (identical for every method). SSIM in a region = mean of the SSIM map "
        f"(valid region: 5-pixel border excluded) over the region's pixels; PSNR, MSE and "
        f"relative error over the region's pixels. A region without scored pixels (empty head "
        f"mask, all-zero reference) is left out of that region's rows: "
        + ", ".join(f"{r} {k} of {total} slices" for r, k in unscored.items())
        + ".",
        f"Intensities: each reference volume is divided by its {rules.scale_percentile:g}th "
        f"percentile of nonzero voxels; data_range = the scaled reference volume's maximum, per "
        f"subject. MSE is in units of that scale squared (dimensionless); PSNR = 10 log10("
        f"data_range^2 / MSE) in dB; relative error = ||ref - est|| / ||ref||.",
        "SSIM (paper convention): Gaussian window sigma 1.5 (11x11), K1 = 0.01, K2 = 0.03, "
        "population covariance (scikit-image gaussian_weights=True, use_sample_covariance=False).",
        f"Statistics: each cell is mean ± sd over slices, in brackets mean ± sd over per-subject "
        f"means; p: two-sided paired Wilcoxon signed-rank test of per-subject means against "
        f"{rules.baseline} (subjects are the independent units, never slices). Higher SSIM/PSNR "
        f"and lower relative error/NMSE/MSE are better.",
        f"fastMRI convention (fastmri/evaluate.py): per volume over all its slices and the whole "
        f"frame, data_range = the volume's maximum, SSIM with a {FASTMRI_WINDOW}x{FASTMRI_WINDOW} "
        f"uniform window and sample covariance averaged over slices, PSNR and NMSE = "
        f"||ref - est||^2 / ||ref||^2 over the volume; mean ± sd over volumes (in brackets the "
        f"same, one volume per subject), p as above.",
    ]


def _notes(df: pd.DataFrame) -> list[str]:
    notes = [
        f"{method}: {note}"
        for (method, note) in df[["method", "note"]].drop_duplicates().itertuples(index=False)
        if isinstance(note, str) and note
    ]
    n = int(df["n_subjects"].min())
    if 2 <= n <= 10:
        notes.append(
            f"with {n} subjects the smallest attainable two-sided p is 2/2^{n} = {2 / 2**n:.3g}"
        )
    return notes


def table1_markdown(df: pd.DataFrame, rules: TableRules) -> str:
    """Markdown: title, the rules as a list, one table per region and one for fastMRI, notes."""
    lines = [f"# {table_title(rules.split)}", ""]
    lines += [f"- {text}" for text in table_rules_text(df, rules)]
    for section in _sections(df, rules):
        lines += ["", f"## {section.title}", ""]
        lines.append("| " + " | ".join(section.header) + " |")
        lines.append("|---" * len(section.header) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in section.rows]
    notes = _notes(df)
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    return "\n".join(lines) + "\n"


_CSS = (
    "body{font-family:sans-serif;margin:1.5em;max-width:80em}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "th,td{border:1px solid #bbb;padding:0.25em 0.6em;text-align:left;font-size:90%}"
    "th{background:#eee}"
)


def table1_html(df: pd.DataFrame, rules: TableRules) -> str:
    """The same content as :func:`table1_markdown` as a standalone HTML page."""
    esc = html.escape
    title = table_title(rules.split)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<ul>",
        *(f"<li>{esc(text)}</li>" for text in table_rules_text(df, rules)),
        "</ul>",
    ]
    for section in _sections(df, rules):
        parts.append(f"<h2>{esc(section.title)}</h2><table>")
        parts.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in section.header) + "</tr>")
        for row in section.rows:
            parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    notes = _notes(df)
    if notes:
        parts.append(f"<p>Notes: {esc('; '.join(notes))}.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_table1(
    df: pd.DataFrame, rules: TableRules, csv_path: Path, md_path: Path, html_path: Path
) -> None:
    """Write the table as CSV (full precision), Markdown and HTML, each atomically."""
    write_csv_atomic(df, csv_path)
    write_text_atomic(md_path, table1_markdown(df, rules))
    write_text_atomic(html_path, table1_html(df, rules))


def _read_csv(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SsimreconError(f"{what} file not found: {path}")
    try:
        df = pd.read_csv(path, dtype={"subject": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SsimreconError(f"cannot read {what} file {path}: {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SsimreconError(f"{what} file {path} lacks columns {missing}")
    return df


def read_metrics_csv(path: Path) -> pd.DataFrame:
    """Read one per-slice metrics CSV, naming the file in errors."""
    return _read_csv(path, SLICE_COLUMNS, "metrics")


def read_volumes_csv(path: Path) -> pd.DataFrame:
    """Read one per-volume (fastMRI) metrics CSV, naming the file in errors."""
    return _read_csv(path, VOLUME_COLUMNS, "volume metrics")
