"""table.py: Table 1 statistics recomputed from the per-slice and per-volume data, the rules its
Markdown/HTML state, the CLI and errors."""

from __future__ import annotations

import dataclasses
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ssimrecon.cli.report import table as table_command
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.table import (
    COLUMNS,
    UNSCORED_NOTE,
    Primary,
    TableRules,
    build_table1,
)
from ssimrecon.evaluation.table_render import write_table1
from ssimrecon.functional.registry import REGISTRY

METRICS = tuple(REGISTRY)
FASTMRI = ("ssim", "psnr", "nmse", "mse")
THRESHOLD = 0.05
PRIMARY = Primary("ssim", "head", "filtered")
RULES = TableRules(
    split="test",
    baseline="Net-mse",
    min_signal_fraction=THRESHOLD,
    scale_percentile=99.5,
    seeds=1,
    primary=PRIMARY,
    resamples=4000,
    bootstrap_seed=7,
)
PLAN = '"primary": {"metric": "ssim", "region": "head", "slices": "filtered"}, ' + (
    '"bootstrap": {"resamples": 4000, "seed": 7}'
)


def _rules(**changes: object) -> TableRules:
    return dataclasses.replace(RULES, **changes)


def _judge(rng: np.random.Generator, metric: str, shift: float) -> float:
    """A value of a perceptual or edge metric that improves with ``shift``."""
    value = rng.uniform(0.4, 0.6)
    return value + 0.1 * shift if REGISTRY[metric].higher_is_better else value * (1 - 0.3 * shift)


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
                        **{m: np.nan if empty else _judge(rng, m, shift) for m in METRICS[4:]},
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
    assert len(table) == 3 * (2 * 2 * len(METRICS) + 4)
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
        build_table1({"Net-mse": a}, {"Net-mse": two["Net-mse"]}, _rules(baseline="nope"))
    with pytest.raises(SsimreconError, match="twice"):
        build_table1({"Net-mse": pd.concat([a, a.iloc[:1]])}, {"Net-mse": two["Net-mse"]}, RULES)
    # the CSVs were written with another threshold than the table is told
    other = _rules(min_signal_fraction=0.2)
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
        f'"scale_percentile": 99.5, "seeds": 1, {PLAN}}}'
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
    # the compact tables (primary, every metric, differences), then filtered and all rows per
    # region and one fastMRI row
    assert len(lines) == 3 + 2 * 2 + 1
    head_filtered = lines[3 + 2]
    assert "filter ≥ 0.05" in head_filtered and "| 5 | 25 |" in head_filtered
    cell = f"{dssim.loc['filtered', 'mean']:.4f} ± {dssim.loc['filtered', 'sd']:.4f}"
    assert cell in head_filtered
    assert f"p={dssim.loc['filtered', 'p_vs_baseline']:.4f}" in head_filtered
    assert f"{dssim.loc['all', 'mean']:.4f}" in lines[6] and "| all slices |" in lines[6]
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
    config = (
        '{"baseline": "a", "min_signal_fraction": 0.05, "scale_percentile": 99.5, "seeds": 1, '
        f"{PLAN}}}"
    )
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
            + ["--config-json", '{"baseline": "a", "min_signal_fraction": 0.05, ' + PLAN + "}"]
            + outputs
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


def _subject_differences(slices: dict[str, pd.DataFrame], method: str) -> np.ndarray:
    """Per-subject paired differences of the primary endpoint (head SSIM, filtered slices)."""

    def means(df: pd.DataFrame) -> pd.Series:
        chosen = df[(df["region"] == "head") & (df["slice_signal"] >= THRESHOLD)]
        return chosen.groupby("subject")["ssim"].mean().sort_index()

    return (means(slices[method]) - means(slices["Net-mse"])).to_numpy()


def _holm_rejects(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down procedure at level ``alpha``: which hypotheses it rejects."""
    order = np.argsort(pvalues)
    rejected = np.zeros(len(pvalues), dtype=bool)
    for k, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - k):
            break
        rejected[i] = True
    return rejected


def test_interval_effect_size_and_holm_p_recomputed_independently() -> None:
    slices, volumes = _inputs()
    # a noisier network, so that the differences and p-values spread
    rng = np.random.default_rng(3)
    noisy = slices["Net-mse-dssim"].copy()
    for m in METRICS:
        noisy[m] = noisy[m] * rng.uniform(0.9, 1.1, len(noisy))
    slices["Net-mse-dssim"] = noisy
    table = build_table1(slices, volumes, RULES)
    mine = table[table["method"] == "Net-mse-dssim"]
    primary = mine[
        (mine["convention"] == "paper")
        & (mine["region"] == "head")
        & (mine["slices"] == "filtered")
        & (mine["metric"] == "ssim")
    ].iloc[0]
    d = _subject_differences(slices, "Net-mse-dssim")
    reference = stats.bootstrap(
        (d,),
        np.mean,
        n_resamples=RULES.resamples,
        method="percentile",
        confidence_level=0.95,
        rng=np.random.default_rng(12345),  # other draws than the table's: Monte Carlo error only
    ).confidence_interval
    width = reference.high - reference.low
    assert primary["difference"] == pytest.approx(d.mean())
    assert primary["diff_low"] == pytest.approx(reference.low, abs=0.05 * width)
    assert primary["diff_high"] == pytest.approx(reference.high, abs=0.05 * width)
    assert primary["effect_size"] == pytest.approx(d.mean() / np.std(d, ddof=1))
    # the primary endpoint is confirmatory; with one tested method its Holm p is its p
    assert primary["role"] == "confirmatory"
    assert primary["p_holm"] == pytest.approx(primary["p_vs_baseline"])
    # every other endpoint is one exploratory family: the Holm p of each is the smallest level
    # at which the step-down procedure rejects it
    family = mine[mine["role"] == "exploratory"]
    assert len(family) == len(mine) - 1
    p = family["p_vs_baseline"].to_numpy()
    adjusted = family["p_holm"].to_numpy()
    assert len(set(np.round(p, 12))) > 3 and (adjusted >= p).all()
    for i, level in enumerate(adjusted):
        if level < 1:
            assert _holm_rejects(p, level * (1 + 1e-9))[i]
            assert not _holm_rejects(p, level * (1 - 1e-6))[i]
    # the baseline is not compared; the zero-filled input is a reference: never tested
    roles = table.groupby("method")["role"].unique()
    assert list(roles["Net-mse"]) == ["baseline"] and list(roles["zero-filled"]) == ["reference"]
    assert table.loc[table["method"] != "Net-mse-dssim", "p_holm"].isna().all()
    zf = _subject_differences(slices, "zero-filled")
    zf_row = table[
        (table["method"] == "zero-filled")
        & (table["metric"] == "ssim")
        & (table["region"] == "head")
    ]
    assert zf_row.iloc[0]["difference"] == pytest.approx(zf.mean())


def test_same_seed_same_interval_and_resamples_matter() -> None:
    slices, volumes = _inputs()
    a = build_table1(slices, volumes, RULES)
    b = build_table1(slices, volumes, RULES)
    np.testing.assert_array_equal(a["diff_low"].to_numpy(), b["diff_low"].to_numpy())
    c = build_table1(slices, volumes, _rules(bootstrap_seed=8))
    tested = a["role"] == "exploratory"
    assert not np.allclose(a.loc[tested, "diff_low"], c.loc[tested, "diff_low"])


def test_a_metric_scored_on_no_slice_is_nan_with_a_note_and_rendered() -> None:
    slices, volumes = _inputs()
    slices = {name: df.assign(vif=np.nan) for name, df in slices.items()}  # a frame below 41 px
    table = build_table1(slices, volumes, RULES)
    vif = table[table["metric"] == "vif"]
    assert vif[["mean", "subject_mean", "difference", "p_vs_baseline"]].isna().all().all()
    assert (vif["n_slices"] == 0).all()
    assert vif["note"].str.endswith(UNSCORED_NOTE).all()
    other = table[(table["metric"] == "haarpsi") & (table["method"] == "Net-mse-dssim")]
    assert other["p_vs_baseline"].notna().all()


def test_compact_table_comes_first_with_the_primary_endpoint_best_values_and_p(
    tmp_path: Path,
) -> None:
    _, md_path, html_path = _run_cli(tmp_path, "test")
    md = md_path.read_text()
    sections = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert sections[0] == ("## Primary endpoint (confirmatory): SSIM, head mask, filter ≥ 0.05")
    assert sections[1].startswith("## Every metric, head mask, filter ≥ 0.05")
    assert sections[2].startswith("## Differences to Net-mse, head mask, filter ≥ 0.05")
    assert "4000 resamples, seed 7" in md and "Holm" in md
    table = build_table1(*_inputs(), RULES)
    row = table[
        (table["method"] == "Net-mse-dssim")
        & (table["region"] == "head")
        & (table["slices"] == "filtered")
        & (table["metric"] == "ssim")
        & (table["convention"] == "paper")
    ].iloc[0]
    primary = next(ln for ln in md.splitlines() if ln.startswith("| Net-mse-dssim |"))
    interval = f"{row['difference']:+.4f} [{row['diff_low']:+.4f}, {row['diff_high']:+.4f}]"
    assert interval in primary and f"{row['p_vs_baseline']:.4f}" in primary
    # the best (highest) per-subject mean SSIM is Net-mse-dssim's (shift +0.5), in bold
    assert f"**{row['subject_mean']:.4f} ± {row['subject_sd']:.4f}**" in primary
    zero = [ln for ln in md.splitlines() if ln.startswith("| zero-filled |")]
    # no p beside the zero-filled input: the primary row ends with "— | — | 5 |"
    assert zero[0].endswith("| — | — | 5 |")
    assert "p_Holm" not in zero[2] and "p_Holm" in md
    assert "<strong>" in html_path.read_text()


def test_a_bad_primary_endpoint_is_an_error_naming_the_key() -> None:
    with pytest.raises(SsimreconError, match=r"evaluation\.primary\.metric: 'lpips' is not one"):
        Primary("lpips", "head", "filtered")
    with pytest.raises(SsimreconError, match=r"evaluation\.primary\.region: 'brain'"):
        Primary("ssim", "brain", "filtered")
    with pytest.raises(SsimreconError, match=r"evaluation\.primary\.slices: missing"):
        Primary.from_config({"metric": "ssim", "region": "head"})
    with pytest.raises(SsimreconError, match=r"evaluation\.primary\.size: unknown key"):
        Primary.from_config({"metric": "ssim", "region": "head", "slices": "all", "size": 1})
    assert Primary.from_config({"metric": "hfen", "region": "frame", "slices": "all"}).key() == (
        "paper",
        "frame",
        "all",
        "hfen",
    )
