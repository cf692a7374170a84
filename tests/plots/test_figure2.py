"""figure2.py: the slice-choice rule, the drawn figure and the CLI on synthetic shards."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from ssimrecon.cli.report import figure2 as figure2_command
from ssimrecon.errors import SsimreconError
from ssimrecon.functional.metrics import slice_metrics
from ssimrecon.kspace.fft import zero_filled_magnitude
from ssimrecon.plots.figure2 import (
    choose_slices,
    collect_candidates,
    display,
    make_figure2,
    zoom_box,
)
from tests.helpers import make_test_model, make_test_shard, sample_mask


def _candidates(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["subject", "slice", "slice_signal"])


def test_choose_two_subjects_largest_signal() -> None:
    cands = _candidates(
        [
            ("IXI010", 4, 0.9),
            ("IXI010", 5, 0.95),
            ("IXI002", 1, 0.3),
            ("IXI002", 7, 0.6),
            ("IXI002", 8, 0.6),  # tie -> lower index
            ("IXI001", 3, 0.01),
            ("IXI001", 4, 0.02),  # below threshold: not a candidate subject
            ("IXI005", 0, 0.2),
            ("IXI005", 9, 0.4),
        ]
    )
    assert choose_slices(cands, 0.05) == [("IXI002", 7), ("IXI005", 9)]
    assert choose_slices(cands, 0.0) == [("IXI001", 4), ("IXI002", 7)]
    assert choose_slices(cands, 0.05, subjects=["IXI010", "IXI002"]) == [
        ("IXI010", 5),
        ("IXI002", 7),
    ]
    assert choose_slices(cands, 0.05, subjects=["IXI005"], slices=[0, 9]) == [
        ("IXI005", 0),
        ("IXI005", 9),
    ]
    assert choose_slices(cands, 0.05, slices=[1, 0]) == [("IXI002", 1), ("IXI005", 0)]
    with pytest.raises(SsimreconError, match="no slice 3"):
        choose_slices(cands, 0.05, subjects=["IXI005"], slices=[3])
    with pytest.raises(SsimreconError, match="IXI999"):
        choose_slices(cands, 0.05, subjects=["IXI999"])
    with pytest.raises(SsimreconError, match="slice_signal >= 0.99"):
        choose_slices(cands, 0.99)


def test_choose_single_subject_two_slices_apart() -> None:
    signal = [
        0.1,
        0.2,
        0.5,
        0.8,
        0.85,
        0.9,
        0.88,
        0.7,
        0.6,
        0.5,
        0.4,
        0.3,
        0.45,
        0.42,
        0.2,
        0.1,
        0.05,
        0.02,
    ]
    cands = _candidates([("S1", i, s) for i, s in enumerate(signal)])
    # best is slice 5; slices 0..15 within 10 of it are excluded except |i - 5| >= 10: 15, 16, 17
    assert choose_slices(cands, 0.05) == [("S1", 5), ("S1", 15)]
    # with the larger-signal slice 12 far enough for min_gap 7
    assert choose_slices(cands, 0.05, min_gap=7) == [("S1", 5), ("S1", 12)]
    # no slice far enough: the next best
    assert choose_slices(cands, 0.05, min_gap=50) == [("S1", 5), ("S1", 6)]


def test_zoom_box_is_clipped_square() -> None:
    assert zoom_box((32, 32), (0.5, 0.5), 0.25) == (12, 12, 8)
    assert zoom_box((32, 40), (0.0, 1.0), 0.5) == (0, 24, 16)
    with pytest.raises(SsimreconError, match="zoom_size"):
        zoom_box((32, 32), (0.5, 0.5), 0.0)


def test_figure2_files_and_panels(tmp_path: Path) -> None:
    shards = [tmp_path / "b.h5", tmp_path / "a.h5"]
    data = {
        "IXI007": make_test_shard(
            shards[0], "IXI007", n_slices=8, seed=1, slice_index=np.arange(20, 28)
        ),
        "IXI003": make_test_shard(shards[1], "IXI003", n_slices=8, seed=2),
    }
    mask = sample_mask()
    make_test_model(tmp_path / "mse.pt", mask, seed=0)
    make_test_model(tmp_path / "dssim.pt", mask, seed=1)
    png, pdf = tmp_path / "fig" / "figure2.png", tmp_path / "fig" / "figure2.pdf"
    models = {"Net-mse": tmp_path / "mse.pt", "Net-mse-dssim": tmp_path / "dssim.pt"}
    panels = make_figure2(
        shards, models, png=png, pdf=pdf, dpi=50, zoom_center=(0.3, 0.6), zoom_size=0.4
    )
    # the rule, recomputed: sorted subjects, argmax of slice_signal in each
    expected = []
    for subject in sorted(data):
        d = data[subject]
        best = int(np.argmax(d["slice_signal"]))
        expected.append((subject, int(d["slice_index"][best]), best))
    assert [(p.subject, p.slice) for p in panels] == [e[:2] for e in expected]
    for panel, (subject, _, pos) in zip(panels, expected):
        d = data[subject]
        np.testing.assert_array_equal(panel.reference, d["target"][pos])
        np.testing.assert_allclose(
            panel.zero_filled, zero_filled_magnitude(d["kspace"][pos]), atol=1e-6
        )
        assert list(panel.networks) == ["Net-mse", "Net-mse-dssim"]
        assert not np.allclose(panel.networks["Net-mse"], panel.networks["Net-mse-dssim"])
        assert slice_metrics(panel.reference, panel.zero_filled, d["data_range"])["ssim"] < 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    image = mpimg.imread(png)
    assert image.shape[0] > image.shape[1] > 100  # 6 rows x 4 columns
    assert image[..., :3].std() > 0.05  # not blank
    assert sorted(p.name for p in png.parent.iterdir()) == ["figure2.pdf", "figure2.png"]

    # CLI with forced subject/slices and one network: narrower figure
    png2 = tmp_path / "one.png"
    assert (
        figure2_command(
            [
                "--shards",
                *map(str, shards),
                "--model",
                f"Net-mse={tmp_path / 'mse.pt'}",
                "--png",
                str(png2),
                "--subjects",
                "IXI007",
                "--slices",
                "21",
                "26",
                "--config-json",
                '{"dpi": 50, "zoom_center": [0.5, 0.5], "zoom_size": 0.3, "error_max": 0.1, '
                '"min_signal_fraction": 0.05}',
            ]
        )
        == 0
    )
    assert mpimg.imread(png2).shape[1] < image.shape[1]

    make_test_model(tmp_path / "wrong.pt", sample_mask(seed=9))
    with pytest.raises(SsimreconError, match=r"wrong\.pt"):
        make_figure2(shards, {"x": tmp_path / "wrong.pt"}, png=tmp_path / "w.png", pdf=None)


def test_collect_candidates_and_display(tmp_path: Path) -> None:
    make_test_shard(tmp_path / "a.h5", "A", n_slices=4, slice_index=np.array([3, 5, 7, 9]))
    make_test_shard(tmp_path / "b.h5", "A", n_slices=4)
    cands = collect_candidates([tmp_path / "a.h5"])
    assert cands["slice"].tolist() == [3, 5, 7, 9] and cands["position"].tolist() == [0, 1, 2, 3]
    with pytest.raises(SsimreconError, match="two shards"):
        collect_candidates([tmp_path / "a.h5", tmp_path / "b.h5"])
    img = np.arange(6).reshape(2, 3)  # (R, A): A should point up, R to the right
    shown = display(img)
    assert shown.shape == (3, 2) and shown[0, 0] == img[0, 2] and shown[-1, -1] == img[1, 0]
