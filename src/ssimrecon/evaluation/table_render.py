"""Table 1 as Markdown and HTML: the compact table first, then the detailed tables and the rules.

Compact table (:func:`_compact_sections`): (1) the primary endpoint (confirmatory): every method's
per-subject mean, the paired difference to the baseline with its 95% bootstrap interval, d_z,
Wilcoxon p and Holm p; (2) every metric in the primary region and slice set, the best value of
each column in bold; (3) the differences to the baseline there, each with its interval and its
Holm-adjusted p beside it.  p-values are shown only for tested comparisons (not for the baseline
or the zero-filled input).  The detailed tables follow: per region, every metric as mean ± sd over
slices (over subjects in brackets), and the fastMRI convention.  The tidy CSV
(:mod:`ssimrecon.evaluation.table`) holds every number at full precision.
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import numpy as np
import pandas as pd

from ssimrecon.atomic import write_csv_atomic, write_text_atomic
from ssimrecon.evaluation.evaluate import REGIONS
from ssimrecon.evaluation.table import SLICE_SETS, TableRules
from ssimrecon.functional.metrics import FASTMRI_WINDOW
from ssimrecon.functional.regions import HEAD_DILATION, HEAD_THRESHOLD
from ssimrecon.functional.registry import REGISTRY

#: number format of the paper-convention metrics that do not use 4 decimals
FORMATS = {"mse": "{:.3e}", "psnr": "{:.2f}"}
#: display name and number format of each metric, per convention
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "paper": {
        name: (
            m.label[0].upper() + m.label[1:] + (f" ({m.unit})" if m.unit else ""),
            FORMATS.get(name, "{:.4f}"),
        )
        for name, m in REGISTRY.items()
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
TESTED = ("confirmatory", "exploratory")


@dataclasses.dataclass(frozen=True)
class _Section:
    """One table of the rendering: heading, header cells, body rows, (row, column) cells to
    mark as the best of their column."""

    title: str
    header: list[str]
    rows: list[list[str]]
    best: frozenset[tuple[int, int]] = frozenset()


def _fmt(fmt: str, value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else fmt.format(value)


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "—"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def _signed(fmt: str) -> str:
    return fmt.replace("{:", "{:+")


def _difference(row: pd.Series, fmt: str) -> str:
    """``+0.0066 [0.0009, 0.0120]``: the mean paired difference and its 95% interval."""
    return (
        f"{_fmt(_signed(fmt), row['difference'])} "
        f"[{_fmt(_signed(fmt), row['diff_low'])}, {_fmt(_signed(fmt), row['diff_high'])}]"
    )


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


def _slice_set_name(which: str, rules: TableRules) -> str:
    return f"filter ≥ {rules.min_signal_fraction:g}" if which == "filtered" else "all slices"


def _endpoint_name(rules: TableRules) -> str:
    p = rules.primary
    return (
        f"{LABELS['paper'][p.metric][0]}, {REGION_TITLES[p.region].lower()}, "
        f"{_slice_set_name(p.slices, rules)}"
    )


def _best_rows(values: list[float], higher_is_better: bool) -> set[int]:
    """Indices of the best finite value(s) of a column."""
    v = np.array(values, dtype=np.float64)
    if not np.isfinite(v).any():
        return set()
    best = np.nanmax(v) if higher_is_better else np.nanmin(v)
    return {i for i, x in enumerate(v) if x == best}


def _part(df: pd.DataFrame, convention: str, region: str, which: str) -> pd.DataFrame:
    return df[(df["convention"] == convention) & (df["region"] == region) & (df["slices"] == which)]


def _compact_sections(df: pd.DataFrame, rules: TableRules) -> list[_Section]:
    methods = list(dict.fromkeys(df["method"]))
    p = rules.primary
    fmt = LABELS["paper"][p.metric][1]
    part = _part(df, "paper", p.region, p.slices)
    primary = part[part["metric"] == p.metric].set_index("method")
    rows = []
    for method in methods:
        row = primary.loc[method]
        tested = row["role"] in TESTED
        rows.append(
            [
                method,
                f"{_fmt(fmt, row['subject_mean'])} ± {_fmt(fmt, row['subject_sd'])}",
                "—" if row["role"] == "baseline" else _difference(row, fmt),
                _fmt("{:+.2f}", row["effect_size"]) if row["role"] != "baseline" else "—",
                _fmt_p(row["p_vs_baseline"]) if tested else "—",
                _fmt_p(row["p_holm"]) if tested else "—",
                str(row["n_subjects"]),
            ]
        )
    best = _best_rows(
        list(primary.loc[methods, "subject_mean"]), REGISTRY[p.metric].higher_is_better
    )
    out = [
        _Section(
            f"Primary endpoint (confirmatory): {_endpoint_name(rules)}",
            [
                "Method",
                "mean ± sd over subjects",
                f"difference to {rules.baseline} [95% CI]",
                "d_z",
                "p (Wilcoxon)",
                "p (Holm)",
                "subjects",
            ],
            rows,
            frozenset((i, 1) for i in best),
        )
    ]
    where = f"{REGION_TITLES[p.region].lower()}, {_slice_set_name(p.slices, rules)}"
    by_metric = {m: part[part["metric"] == m].set_index("method") for m in REGISTRY}
    arrows = {m: "↑" if REGISTRY[m].higher_is_better else "↓" for m in REGISTRY}
    header = ["Method", *(f"{LABELS['paper'][m][0]} {arrows[m]}" for m in REGISTRY)]
    rows = [
        [
            method,
            *(
                _fmt(LABELS["paper"][m][1], by_metric[m].loc[method, "subject_mean"])
                for m in REGISTRY
            ),
        ]
        for method in methods
    ]
    marks = {
        (i, j + 1)
        for j, m in enumerate(REGISTRY)
        for i in _best_rows(
            list(by_metric[m].loc[methods, "subject_mean"]), REGISTRY[m].higher_is_better
        )
    }
    out.append(
        _Section(
            f"Every metric, {where}: mean over subjects (best in bold; ↑ higher is better, "
            "↓ lower)",
            header,
            rows,
            frozenset(marks),
        )
    )
    rows = []
    for method in methods:
        if method == rules.baseline:
            continue
        cells = [method]
        for m in REGISTRY:
            row = by_metric[m].loc[method]
            text = _difference(row, LABELS["paper"][m][1])
            if row["role"] in TESTED:
                kind = "p" if row["role"] == "confirmatory" else "p_Holm"
                value = row["p_vs_baseline"] if row["role"] == "confirmatory" else row["p_holm"]
                text += f" {kind} {_fmt_p(value)}"
            cells.append(text)
        rows.append(cells)
    out.append(
        _Section(
            f"Differences to {rules.baseline}, {where}: mean paired difference over subjects "
            "[95% bootstrap CI], p beside it (the primary metric: confirmatory, unadjusted; "
            "every other: exploratory, Holm-adjusted)",
            ["Method", *(LABELS["paper"][m][0] for m in REGISTRY)],
            rows,
        )
    )
    return out


def _cell(row: pd.Series, fmt: str) -> str:
    text = (
        f"{_fmt(fmt, row['mean'])} ± {_fmt(fmt, row['sd'])} "
        f"({_fmt(fmt, row['subject_mean'])} ± {_fmt(fmt, row['subject_sd'])})"
    )
    if row["role"] in TESTED:
        text += f" p={_fmt_p(row['p_vs_baseline'])}, Holm {_fmt_p(row['p_holm'])}"
    return text


def _detailed_sections(df: pd.DataFrame, rules: TableRules) -> list[_Section]:
    methods = list(dict.fromkeys(df["method"]))
    out = []
    labels = LABELS["paper"]
    for region in REGIONS:
        rows = []
        for method in methods:
            for which in SLICE_SETS:
                part = _part(df[df["method"] == method], "paper", region, which)
                part = part.set_index("metric")
                cells = [_cell(part.loc[m], labels[m][1]) for m in labels]
                first = part.iloc[0]
                rows.append(
                    [
                        method,
                        _slice_set_name(which, rules),
                        *cells,
                        str(first["n_subjects"]),
                        str(first["n_slices"]),
                    ]
                )
        header = ["Method", "Slices", *(label for label, _ in labels.values())]
        out.append(
            _Section(f"{REGION_TITLES[region]} (detail)", [*header, "subjects", "slices"], rows)
        )
    labels = LABELS["fastmri"]
    rows = []
    for method in methods:
        part = df[(df["method"] == method) & (df["convention"] == "fastmri")].set_index("metric")
        cells = [_cell(part.loc[m], labels[m][1]) for m in labels]
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
            "statistic, so each cell is a mean over seeds, p compares per-subject means of "
            "seed-averaged slices and the intervals resample subjects only (study.csv has the "
            "hierarchical bootstrap over seeds and subjects)."
        ]
        if rules.seeds > 1
        else []
    )
    p = rules.primary
    return [
        f"Statistics plan (evaluation.primary): the primary endpoint is {_endpoint_name(rules)} "
        f"(metric {p.metric}, region {p.region}, slices {p.slices}); its paired test of each "
        f"method against {rules.baseline} is confirmatory (Holm over the methods compared). "
        "Every other endpoint is exploratory: its p is Holm-adjusted over that method's "
        "other endpoints (paper and fastMRI conventions, both regions, both slice sets). The "
        "zero-filled input is a reference: its differences are shown, never tested.",
        f"Differences: method - {rules.baseline} of per-subject means, the mean over subjects "
        f"with a 95% percentile bootstrap interval over subjects ({rules.resamples} resamples, "
        f"seed {rules.bootstrap_seed}; evaluation.bootstrap); effect size d_z = mean / sd of "
        "the paired differences.",
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
        f"(valid region: 5-pixel border excluded) over the region's pixels; PSNR, MSE, "
        f"relative error and HFEN over the region's pixels; HaarPSI, VIF, GMSD and MS-SSIM, "
        f"which pool whole images, on the crop to the region's bounding box grown to the "
        f"metric's side. A region without scored pixels (empty head "
        f"mask, all-zero reference) is left out of that region's rows: "
        + ", ".join(f"{r} {k} of {total} slices" for r, k in unscored.items())
        + "; a metric is also NaN (left out) on an image below its smallest side.",
        f"Intensities: each reference volume is divided by its {rules.scale_percentile:g}th "
        f"percentile of nonzero voxels; data_range = the scaled reference volume's maximum, per "
        f"subject. MSE is in units of that scale squared (dimensionless); PSNR = 10 log10("
        f"data_range^2 / MSE) in dB; relative error = ||ref - est|| / ||ref||.",
        "SSIM (paper convention): Gaussian window sigma 1.5 (11x11), K1 = 0.01, K2 = 0.03, "
        "population covariance (scikit-image gaussian_weights=True, use_sample_covariance=False). "
        "HaarPSI with the medical parameters, VIF in the pixel domain, GMSD, MS-SSIM and HFEN "
        "(LoG 15x15, sigma 1.5) as docs/definitions.md states.",
        f"Detailed tables: each cell is mean ± sd over slices, in brackets mean ± sd over "
        f"per-subject means; p: two-sided paired Wilcoxon signed-rank test of per-subject means "
        f"against {rules.baseline} (subjects are the independent units, never slices), then the "
        f"Holm-adjusted p. Higher SSIM/PSNR/HaarPSI/VIF/MS-SSIM and lower relative "
        f"error/MSE/GMSD/HFEN/NMSE are better.",
        f"fastMRI convention (fastmri/evaluate.py): per volume over all its slices and the whole "
        f"frame, data_range = the volume's maximum, SSIM with a {FASTMRI_WINDOW}x{FASTMRI_WINDOW} "
        f"uniform window and sample covariance averaged over slices, PSNR and NMSE = "
        f"||ref - est||^2 / ||ref||^2 over the volume; mean ± sd over volumes (in brackets the "
        f"same, one volume per subject), p as above.",
    ]


def acquisition_text(rules: TableRules) -> str:
    """The header line of the acquisition: forward model, nominal and effective acceleration
    (empty when the table was not given its mask)."""
    if not np.isfinite(rules.acceleration):
        return ""
    model = rules.forward_model
    why = (
        "the k-space of a real magnitude image is Hermitian symmetric, so a sampled point also "
        "gives its mirror"
        if model == "magnitude"
        else "complex data: a mirror carries no second copy of a sample"
    )
    return (
        f"Acquisition: forward model {model} (preprocessing.forward_model); mask R = "
        f"{rules.acceleration:.2f} nominal, effective R = {rules.effective_acceleration:.2f} "
        f"({why})."
    )


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


def _markdown_cell(section: _Section, i: int, j: int, text: str) -> str:
    return f"**{text}**" if (i, j) in section.best else text


def table1_markdown(df: pd.DataFrame, rules: TableRules) -> str:
    """Markdown: title, the compact tables, the rules as a list, the detailed tables, notes."""
    lines = [f"# {table_title(rules.split)}"]
    if acquisition_text(rules):
        lines += ["", acquisition_text(rules)]
    compact = _compact_sections(df, rules)

    def emit(sections: list[_Section]) -> None:
        for section in sections:
            lines.extend(["", f"## {section.title}", ""])
            lines.append("| " + " | ".join(section.header) + " |")
            lines.append("|---" * len(section.header) + "|")
            for i, row in enumerate(section.rows):
                cells = [_markdown_cell(section, i, j, c) for j, c in enumerate(row)]
                lines.append("| " + " | ".join(cells) + " |")

    emit(compact)
    lines += ["", "## Rules", ""]
    lines += [f"- {text}" for text in table_rules_text(df, rules)]
    emit(_detailed_sections(df, rules))
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
    ]
    if acquisition_text(rules):
        parts.append(f"<p>{esc(acquisition_text(rules))}</p>")

    def emit(sections: list[_Section]) -> None:
        for section in sections:
            parts.append(f"<h2>{esc(section.title)}</h2><table>")
            parts.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in section.header) + "</tr>")
            for i, row in enumerate(section.rows):
                cells = [
                    f"<td><strong>{esc(c)}</strong></td>"
                    if (i, j) in section.best
                    else f"<td>{esc(c)}</td>"
                    for j, c in enumerate(row)
                ]
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</table>")

    emit(_compact_sections(df, rules))
    parts += ["<h2>Rules</h2>", "<ul>"]
    parts += [f"<li>{esc(text)}</li>" for text in table_rules_text(df, rules)]
    parts.append("</ul>")
    emit(_detailed_sections(df, rules))
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
