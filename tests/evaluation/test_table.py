"""table.py: Table 1 statistics recomputed from the per-slice and per-volume data, the rules its
Markdown/HTML state, the CLI and errors."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ssimrecon.cli.report import table as table_command
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.table import COLUMNS, TableRules, build_table1, write_table1

METRICS = ("ssim", "psnr", "rel_error", "mse")
FASTMRI = ("ssim", "psnr", "nmse", "mse")
THRESHOLD = 0.05
RULES = TableRules(
    split="test", baseline="Net-mse", min_signal_fraction=THRESHOLD, scale_percentile=99.5, seeds=1
)


def _slices(seed: int, shift: float, subjects: int = 5, slices: int = 6) -> pd.DataFrame:
    """Per-slice rows in both regions; slice 0 of every subject fails the filter and has no head
    pixels (NaN in the head region); ``shift`` moves SSIM/PSNR up and errors down."""
    rng = np.random.default_rng(seed)
    signal = np.random.default_rng(99).uniform(0.1, 0.5, (subjects, slices))  # same for all
    signal[:, 0] = 0.01
    rows = []
    for s in range(subjects):
        for i in range(slices):
            for region in ("frame", "head"):
                mse = rng.uniform(1e-3, 3e-3) * (1 - 0.3 * shift)
                empty = region == "head" and i == 0
                rows.append(
                    {
                        "subject": f"IXI{s:03d}",
                        "slice": 10 + 2 * i,
                        "slice_signal": signal[s, i],
                        "passes_filter": signal[s, i] >= THRESHOLD,
                        "region": region,
                        "pixels": 0 if empty else 500,
                        "ssim": np.nan if empty else rng.uniform(0.6, 0.8) + 0.1 * shift,
                        "psnr": np.nan if empty else 10 * np.log10(1 / mse),
                        "rel_error": np.nan if empty else rng.uniform(0.1, 0.2) * (1 - 0.3 * shift),
                        "mse": np.nan if empty else mse,
                    }
                )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # order must not matter


def _volumes(seed: int, shift: float, subjects: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 100)
    return pd.DataFrame(
        {
            "subject": [f"IXI{s:03d}" for s in range(subjects)],
            "slices": 6,
            "data_range": 1.2,
            "ssim": rng.uniform(0.6, 0.65, subjects) + 0.1 * shift,
            "psnr": rng.uniform(25, 30, subjects) + shift,
            "nmse": rng.uniform(0.01, 0.03, subjects) * (1 - 0.3 * shift),
            "mse": rng.uniform(1e-3, 3e-3, subjects) * (1 - 0.3 * shift),
        }
    )


SHIFTS = {"zero-filled": -1.0, "Net-mse": 0.0, "Net-mse-dssim": 0.5}


def _inputs() -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    slices = {name: _slices(i, shift) for i, (name, shift) in enumerate(SHIFTS.items())}
    volumes = {name: _volumes(i, shift) for i, (name, shift) in enumerate(SHIFTS.items())}
    return slices, volumes


def test_table_values_equal_direct_recomputation() -> None:
    slices, volumes = _inputs()
    table = build_table1(slices, volumes, RULES)
    assert list(table.columns) == list(COLUMNS)
    assert list(dict.fromkeys(table["method"])) == list(SHIFTS)
    assert len(table) == 3 * (2 * 2 * 4 + 4)
    assert set(table["split"]) == {"test"} and set(table["baseline"]) == {"Net-mse"}
    for _, row in table[table["convention"] == "paper"].iterrows():
        df = slices[row["method"]]
        chosen = df[df["region"] == row["region"]]
        if row["slices"] == "filtered":
            chosen = chosen[chosen["slice_signal"] >= THRESHOLD]
        values = chosen[["subject", row["metric"]]].dropna()
        per_subject = values.groupby("subject")[row["metric"]].mean().sort_index()
        assert row["n_slices"] == len(values) and row["n_subjects"] == 5
        assert row["mean"] == pytest.approx(np.mean(values[row["metric"]]))
        assert row["sd"] == pytest.approx(np.std(values[row["metric"]], ddof=1))
        assert row["subject_mean"] == pytest.approx(np.mean(per_subject))
        assert row["subject_sd"] == pytest.approx(np.std(per_subject, ddof=1))
        if row["method"] == "Net-mse":
            assert math.isnan(row["p_vs_baseline"])
        else:
            base = slices["Net-mse"]
            base = base[base["region"] == row["region"]]
            if row["slices"] == "filtered":
                base = base[base["slice_signal"] >= THRESHOLD]
            base_subject = base.groupby("subject")[row["metric"]].mean().sort_index()
            expected = stats.wilcoxon(per_subject, base_subject).pvalue
            assert row["p_vs_baseline"] == pytest.approx(expected)
    # slice counts: 30 slices, 5 fail the filter, 5 have no head pixels (the same 5)
    counts = table[(table["method"] == "Net-mse") & (table["metric"] == "ssim")]
    counts = counts.set_index(["convention", "region", "slices"])["n_slices"]
    assert counts[("paper", "frame", "all")] == 30 and counts[("paper", "frame", "filtered")] == 25
    assert counts[("paper", "head", "all")] == 25 and counts[("fastmri", "frame", "all")] == 30
    for _, row in table[table["convention"] == "fastmri"].iterrows():
        v = volumes[row["method"]][row["metric"]]
        assert row["mean"] == pytest.approx(v.mean()) and row["sd"] == pytest.approx(v.std())
        assert row["subject_mean"] == pytest.approx(v.mean()) and row["n_subjects"] == 5
        if row["method"] != "Net-mse":
            expected = stats.wilcoxon(v, volumes["Net-mse"][row["metric"]]).pvalue
            assert row["p_vs_baseline"] == pytest.approx(expected)
    # a consistent shift over 5 subjects gives the smallest exact two-sided p: 2 / 2**5
    zf = table[(table["method"] == "zero-filled") & (table["metric"] == "ssim")]
    assert zf["p_vs_baseline"].to_numpy() == pytest.approx(np.full(len(zf), 2 / 32))


def test_unfiltered_numbers_differ_when_filtered_slices_differ() -> None:
    slices, volumes = _inputs()
    bad = slices["Net-mse"].copy()
    failing = ~bad["passes_filter"]
    bad.loc[failing, "mse"] = 1.0  # huge errors only on the slices the filter drops
    table = build_table1({**slices, "Net-mse": bad}, volumes, RULES)
    rows = table[(table["method"] == "Net-mse") & (table["metric"] == "mse")]
    rows = rows[(rows["region"] == "frame") & (rows["convention"] == "paper")]
    rows = rows.set_index("slices")["mean"]
    assert rows["filtered"] < 0.01 < rows["all"]


def test_undefined_p_values_are_nan_with_a_note() -> None:
    slices, volumes = _inputs()
    base, vols = slices["Net-mse"], volumes["Net-mse"]
    table = build_table1(
        {"Net-mse": base, "copy": base.copy()}, {"Net-mse": vols, "copy": vols}, RULES
    )
    rows = table[table["method"] == "copy"]
    assert rows["p_vs_baseline"].isna().all()
    assert rows["note"].str.contains("zero").all()
    one = _slices(0, 0.0, subjects=1)
    one_v = _volumes(0, 0.0, subjects=1)
    table = build_table1(
        {"Net-mse": one, "other": _slices(5, 1.0, subjects=1)},
        {"Net-mse": one_v, "other": _volumes(5, 1.0, subjects=1)},
        RULES,
    )
    row = table[table["method"] == "other"].iloc[0]
    assert math.isnan(row["p_vs_baseline"]) and "1 subject" in row["note"]
    assert math.isnan(row["subject_sd"])


def test_mismatched_inputs_and_bad_baseline_are_errors() -> None:
    slices, volumes = _inputs()
    a, b = slices["Net-mse"], slices["Net-mse-dssim"]
    two = {"Net-mse": volumes["Net-mse"], "Net-mse-dssim": volumes["Net-mse-dssim"]}
    with pytest.raises(SsimreconError, match="Net-mse-dssim.*Net-mse"):
        build_table1({"Net-mse": a, "Net-mse-dssim": b.iloc[1:]}, two, RULES)
    shifted = b.assign(slice=b["slice"] + 1)
    with pytest.raises(SsimreconError, match="different"):
        build_table1({"Net-mse": a, "Net-mse-dssim": shifted}, two, RULES)
    with pytest.raises(SsimreconError, match="volumes"):
        build_table1(
            {"Net-mse": a, "Net-mse-dssim": b},
            {**two, "Net-mse-dssim": two["Net-mse-dssim"].iloc[1:]},
            RULES,
        )
    with pytest.raises(SsimreconError, match="baseline 'nope'"):
        build_table1(
            {"Net-mse": a}, {"Net-mse": two["Net-mse"]}, TableRules("test", "nope", 0.05, 99.5, 1)
        )
    with pytest.raises(SsimreconError, match="twice"):
        build_table1({"Net-mse": pd.concat([a, a.iloc[:1]])}, {"Net-mse": two["Net-mse"]}, RULES)
    # the CSVs were written with another threshold than the table is told
    other = TableRules("test", "Net-mse", 0.2, 99.5, 1)
    with pytest.raises(SsimreconError, match=r"evaluation\.min_signal_fraction = 0\.2"):
        build_table1({"Net-mse": a}, {"Net-mse": two["Net-mse"]}, other)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.text: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _run_cli(tmp_path: Path, split: str, baseline: str = "Net-mse") -> tuple[Path, Path, Path]:
    slices, volumes = _inputs()
    args, vols = [], []
    for name in SHIFTS:
        slices[name].to_csv(tmp_path / f"{name}.csv", index=False)
        volumes[name].to_csv(tmp_path / f"{name}.volumes.csv", index=False)
        args.append(f"{name}={tmp_path / f'{name}.csv'}")
        vols.append(f"{name}={tmp_path / f'{name}.volumes.csv'}")
    out = tmp_path / "out"
    paths = (out / f"{split}.csv", out / f"{split}.md", out / f"{split}.html")
    config = (
        f'{{"baseline": "{baseline}", "min_signal_fraction": {THRESHOLD}, '
        '"scale_percentile": 99.5, "seeds": 1}'
    )
    assert (
        table_command(
            ["--metrics", *args, "--volumes", *vols, "--split", split, "--config-json", config]
            + ["--csv", str(paths[0]), "--md", str(paths[1]), "--html", str(paths[2])]
        )
        == 0
    )
    return paths


def test_cli_writes_csv_markdown_and_html_that_state_the_rules(tmp_path: Path) -> None:
    csv_path, md_path, html_path = _run_cli(tmp_path, "test")
    written = pd.read_csv(csv_path)
    slices, volumes = _inputs()
    expected = build_table1(slices, volumes, RULES)
    np.testing.assert_allclose(written["mean"], expected["mean"])
    md = md_path.read_text()
    assert md.startswith("# Table 1: reconstruction quality on the test subjects")
    for rule in [
        "split 'test'",
        "evaluation.min_signal_fraction = 0.05",
        "25 of 30 slices (16.7% left out)",
        "head mask = reference > 0.1 x data_range",
        "head 5 of 30 slices",
        "99.5th percentile",
        "MSE is in units of that scale squared",
        "data_range = the scaled reference volume's maximum",
        "paired Wilcoxon signed-rank test of per-subject means against Net-mse",
        "7x7 uniform window",
        "2/2^5 = 0.0625",
    ]:
        assert rule in md, rule
    for title in ["## Whole frame", "## Head mask", "## fastMRI convention"]:
        assert title in md
    dssim = expected[
        (expected["method"] == "Net-mse-dssim")
        & (expected["convention"] == "paper")
        & (expected["region"] == "head")
        & (expected["metric"] == "ssim")
    ].set_index("slices")
    lines = [ln for ln in md.splitlines() if ln.startswith("| Net-mse-dssim |")]
    assert len(lines) == 2 * 2 + 1  # filtered and all rows per region, one fastMRI row
    head_filtered = lines[2]
    assert "filter ≥ 0.05" in head_filtered and "| 5 | 25 |" in head_filtered
    cell = f"{dssim.loc['filtered', 'mean']:.4f} ± {dssim.loc['filtered', 'sd']:.4f}"
    assert cell in head_filtered
    assert f"p={dssim.loc['filtered', 'p_vs_baseline']:.4f}" in head_filtered
    assert f"{dssim.loc['all', 'mean']:.4f}" in lines[3] and "| all |" in lines[3]
    page = _Text()
    page.feed(html_path.read_text())
    text = " ".join(page.text)
    assert "Table 1: reconstruction quality on the test subjects" in text
    assert cell in text and "evaluation.min_signal_fraction = 0.05" in text


def test_validation_table_is_named_as_validation(tmp_path: Path) -> None:
    _, md_path, html_path = _run_cli(tmp_path, "val")
    md = md_path.read_text()
    assert md.startswith("# Table 1 (validation split): reconstruction quality on the validation")
    assert "split 'val'" in md
    assert "<title>Table 1 (validation split)" in html_path.read_text()


def test_cli_names_missing_and_malformed_files(tmp_path: Path) -> None:
    csv_path, md_path, html_path = tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.html"
    outputs = ["--csv", str(csv_path), "--md", str(md_path), "--html", str(html_path)]
    config = '{"baseline": "a", "min_signal_fraction": 0.05, "scale_percentile": 99.5, "seeds": 1}'
    with pytest.raises(SsimreconError, match="missing.csv"):
        table_command(
            ["--metrics", f"a={tmp_path / 'missing.csv'}", "--volumes", f"a={tmp_path / 'v.csv'}"]
            + ["--split", "test", "--config-json", config, *outputs]
        )
    (tmp_path / "bad.csv").write_text("subject,slice,ssim\nA,1,0.5\n")
    with pytest.raises(SsimreconError, match=r"bad\.csv.*slice_signal"):
        table_command(
            ["--metrics", f"a={tmp_path / 'bad.csv'}", "--volumes", f"a={tmp_path / 'v.csv'}"]
            + ["--split", "test", "--config-json", config, *outputs]
        )
    with pytest.raises(SsimreconError, match=r"evaluation\.scale_percentile: missing"):
        table_command(
            ["--metrics", "a=x.csv", "--volumes", "a=y.csv", "--split", "test"]
            + ["--config-json", '{"baseline": "a", "min_signal_fraction": 0.05}', *outputs]
        )
    assert not csv_path.exists()


def test_write_table1_round_trip(tmp_path: Path) -> None:
    slices, volumes = _inputs()
    table = build_table1(slices, volumes, RULES)
    write_table1(table, RULES, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.html")
    back = pd.read_csv(tmp_path / "t.csv", keep_default_na=False, na_values=[""])
    assert back.columns.tolist() == table.columns.tolist()
    np.testing.assert_allclose(back["subject_mean"], table["subject_mean"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.html", "t.md"]
