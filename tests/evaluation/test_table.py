"""table.py: Table 1 statistics recomputed from the per-slice data, markdown, CLI and errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ssimrecon.cli.report import table as table_command
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.table import build_table1, write_table1

METRICS = ("ssim", "psnr", "rel_error", "mse")


def _metrics(seed: int, shift: float, subjects: int = 5, slices: int = 4) -> pd.DataFrame:
    """Random per-slice metrics; ``shift`` moves SSIM/PSNR up and errors down."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(subjects):
        for i in range(slices):
            mse = rng.uniform(1e-3, 3e-3) * (1 - 0.3 * shift)
            rows.append(
                {
                    "subject": f"IXI{s:03d}",
                    "slice": 10 + 2 * i,
                    "ssim": rng.uniform(0.6, 0.8) + 0.1 * shift,
                    "psnr": 10 * np.log10(1 / mse),
                    "rel_error": rng.uniform(0.1, 0.2) * (1 - 0.3 * shift),
                    "mse": mse,
                }
            )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # order must not matter


def test_table_values_equal_direct_recomputation() -> None:
    frames = {
        "zero-filled": _metrics(0, -1.0),
        "Net-mse": _metrics(1, 0.0),
        "Net-mse-dssim": _metrics(2, 0.5),
    }
    table = build_table1(frames, baseline="Net-mse")
    assert table["method"].tolist() == ["zero-filled", "Net-mse", "Net-mse-dssim"]
    base_subject = frames["Net-mse"].groupby("subject")[list(METRICS)].mean()
    for _, row in table.iterrows():
        df = frames[row["method"]]
        per_subject = df.groupby("subject")[list(METRICS)].mean()
        assert row["n_subjects"] == 5 and row["n_slices"] == 20
        for m in METRICS:
            assert row[f"{m}_mean"] == pytest.approx(np.mean(df[m]))
            assert row[f"{m}_std"] == pytest.approx(np.std(df[m], ddof=1))
            assert row[f"{m}_subject_mean"] == pytest.approx(np.mean(per_subject[m]))
            assert row[f"{m}_subject_std"] == pytest.approx(np.std(per_subject[m], ddof=1))
            p = row[f"{m}_p_vs_Net-mse"]
            if row["method"] == "Net-mse":
                assert math.isnan(p)
            else:
                expected = stats.wilcoxon(
                    per_subject[m].sort_index(), base_subject[m].sort_index()
                ).pvalue
                assert p == pytest.approx(expected)
                assert 0 < p <= 1
    # a consistent shift over 5 subjects gives the smallest exact two-sided p: 2 / 2**5
    assert table.loc[table["method"] == "zero-filled", "ssim_p_vs_Net-mse"].item() == pytest.approx(
        2 / 32
    )


def test_undefined_p_values_are_nan_with_a_note() -> None:
    base = _metrics(0, 0.0)
    table = build_table1({"Net-mse": base, "copy": base.copy()}, baseline="Net-mse")
    row = table.set_index("method").loc["copy"]
    assert all(math.isnan(row[f"{m}_p_vs_Net-mse"]) for m in METRICS)
    assert "zero" in row["note"]
    one = _metrics(0, 0.0, subjects=1)
    table = build_table1(
        {"Net-mse": one, "other": _metrics(5, 1.0, subjects=1)}, baseline="Net-mse"
    )
    row = table.set_index("method").loc["other"]
    assert math.isnan(row["ssim_p_vs_Net-mse"]) and "1 subject" in row["note"]
    assert math.isnan(row["ssim_subject_std"])


def test_mismatched_slice_sets_and_bad_baseline_are_errors() -> None:
    a, b = _metrics(0, 0.0), _metrics(1, 1.0)
    with pytest.raises(SsimreconError, match="Net-mse-dssim.*Net-mse"):
        build_table1({"Net-mse": a, "Net-mse-dssim": b.iloc[1:]}, baseline="Net-mse")
    shifted = b.assign(slice=b["slice"] + 1)
    with pytest.raises(SsimreconError, match="different"):
        build_table1({"Net-mse": a, "Net-mse-dssim": shifted}, baseline="Net-mse")
    with pytest.raises(SsimreconError, match="baseline 'nope'"):
        build_table1({"Net-mse": a}, baseline="nope")
    with pytest.raises(SsimreconError, match="twice"):
        build_table1({"Net-mse": pd.concat([a, a.iloc[:1]])}, baseline="Net-mse")


def test_cli_writes_csv_and_markdown(tmp_path: Path) -> None:
    frames = {
        "zero-filled": _metrics(0, -1.0),
        "Net-mse": _metrics(1, 0.0),
        "Net-mse-dssim": _metrics(2, 0.5),
    }
    args = []
    for name, df in frames.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
        args.append(f"{name}={tmp_path / f'{name}.csv'}")
    csv_path, md_path = tmp_path / "out" / "table1.csv", tmp_path / "out" / "table1.md"
    assert (
        table_command(
            [
                "--metrics",
                *args,
                "--config-json",
                '{"baseline": "Net-mse"}',
                "--csv",
                str(csv_path),
                "--md",
                str(md_path),
            ]
        )
        == 0
    )
    written = pd.read_csv(csv_path)
    expected = build_table1(frames, "Net-mse")
    np.testing.assert_allclose(written["psnr_mean"], expected["psnr_mean"])
    md = md_path.read_text()
    lines = md.splitlines()
    assert "Wilcoxon" in md and "Net-mse" in md and "2/2^5 = 0.0625" in md
    table_rows = [line for line in lines if line.startswith("| Net-mse-dssim")]
    assert len(table_rows) == 1
    ssim = expected.set_index("method").loc["Net-mse-dssim"]
    assert f"{ssim['ssim_mean']:.4f} ± {ssim['ssim_std']:.4f}" in table_rows[0]
    assert f"p={ssim['ssim_p_vs_Net-mse']:.4f}" in table_rows[0]
    with pytest.raises(SsimreconError, match="missing.csv"):
        table_command(
            [
                "--metrics",
                f"a={tmp_path / 'missing.csv'}",
                "--config-json",
                '{"baseline": "a"}',
                "--csv",
                str(csv_path),
                "--md",
                str(md_path),
            ]
        )
    (tmp_path / "bad.csv").write_text("subject,slice,ssim\nA,1,0.5\n")
    with pytest.raises(SsimreconError, match=r"bad\.csv.*psnr"):
        table_command(
            [
                "--metrics",
                f"a={tmp_path / 'bad.csv'}",
                "--config-json",
                '{"baseline": "a"}',
                "--csv",
                str(csv_path),
                "--md",
                str(md_path),
            ]
        )


def test_write_table1_round_trip(tmp_path: Path) -> None:
    table = build_table1(
        {"Net-mse": _metrics(1, 0.0), "Net-mse-dssim": _metrics(2, 0.5)}, "Net-mse"
    )
    write_table1(table, tmp_path / "t.csv", tmp_path / "t.md")
    back = pd.read_csv(tmp_path / "t.csv")
    assert back.columns.tolist() == table.columns.tolist()
    np.testing.assert_allclose(back["mse_subject_mean"], table["mse_subject_mean"])
