"""figure2.py: the slice-choice rule, the drawn figure and the CLI on synthetic shards."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ssimrecon.cli.report import figure2 as figure2_command
from ssimrecon.errors import SsimreconError
from ssimrecon.functional.metrics import slice_metrics
from ssimrecon.kspace.fft import zero_filled_magnitude
from ssimrecon.nn.bundle import load_model_bundle
from ssimrecon.plots.figure2 import (
    MIN_ZOOM_PIXELS,
    choose_slices,
    collect_candidates,
    display,
    make_figure2,
    orientation_letters,
    zoom_box,
)
from tests.helpers.models import make_test_model
from tests.helpers.reference import skimage_ssim_psnr
from tests.helpers.shards import (
    make_test_shard,
    preprocessing,
    sample_mask,
    set_slice_geometry,
    write_mask_file,
)


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


def test_zoom_box_is_clipped_square_of_at_least_32_pixels() -> None:
    assert MIN_ZOOM_PIXELS == 32
    assert zoom_box((256, 160), (0.45, 0.55), 0.25) == (95, 68, 40)  # 0.25 x 160 = 40 pixels
    assert zoom_box((128, 80), (0.5, 0.5), 0.25) == (48, 24, 32)  # 20 pixels grown to 32
    assert zoom_box((64, 80), (0.0, 1.0), 0.75) == (0, 32, 48)  # clipped into the panel
    assert zoom_box((20, 40), (0.5, 0.5), 0.1) == (0, 10, 20)  # never larger than the panel
    with pytest.raises(SsimreconError, match="zoom_size"):
        zoom_box((32, 32), (0.5, 0.5), 0.0)


def test_orientation_letters_follow_ras_and_the_readout_axis() -> None:
    assert orientation_letters(2) == {"left": "L", "right": "R", "top": "A", "bottom": "P"}
    assert orientation_letters(1) == {"left": "L", "right": "R", "top": "S", "bottom": "I"}
    assert orientation_letters(0) == {"left": "P", "right": "A", "top": "S", "bottom": "I"}


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
        shards, models, mask=mask, png=png, pdf=pdf, dpi=50, zoom_center=(0.3, 0.6), zoom_size=0.4
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
                "--mask",
                str(write_mask_file(tmp_path / "mask.npz", mask)),
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
        make_figure2(
            shards, {"x": tmp_path / "wrong.pt"}, mask=mask, png=tmp_path / "w.png", pdf=None
        )


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


_ANNOTATION = re.compile(r"SSIM (\S+)\nPSNR (\S+) dB")


def _grid(fig: Figure) -> dict[tuple[int, int], Axes]:
    """(row, column) -> the subplot there (inset axes such as the colour bar are left out)."""
    grid = {}
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is not None:
            grid[(spec.rowspan.start, spec.colspan.start)] = ax
    return grid


def _independent_network_output(
    model_path: Path, zero_filled: np.ndarray, volume_zero_filled: np.ndarray
) -> np.ndarray:
    """The bundle's U-Net applied to a zero-filled magnitude image (H, W) -> (H, W) float32, as the
    definitions state: ``model(zero_filled / s) * s``, s the 99.5th percentile of the voxels > 0 of
    the whole volume's zero-filled magnitude ``volume_zero_filled`` (S, H, W)."""
    s = float(np.percentile(volume_zero_filled[volume_zero_filled > 0], 99.5))
    model, _ = load_model_bundle(model_path)
    x = torch.from_numpy(np.ascontiguousarray(zero_filled / s, np.float32))[None, None]
    with torch.no_grad():
        out = model(x)
    return out[0, 0].numpy() * np.float32(s)


@pytest.fixture
def saved_figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every matplotlib Figure saved during the test, in order (savefig still writes the file)."""
    saved: list[Figure] = []
    original_savefig = Figure.savefig

    def capture(fig: Figure, *args: object, **kwargs: object) -> None:
        saved.append(fig)
        original_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    return saved


def test_figure2_annotations_and_error_maps_match_the_metrics(
    tmp_path: Path, saved_figures: list[Figure]
) -> None:
    """Every non-reference panel reads the SSIM / PSNR of its estimate against the reference
    (recomputed with scikit-image from independently rebuilt images), shows that estimate on the
    reference's grey scale, and its error map is |estimate - reference| / data range on [0,
    error_max].

    Mutations tried (each fails this test): the annotation computed as
    ``slice_metrics(panel.reference, panel.reference, ...)`` (every panel reading 1.000); the error
    map drawn as ``image - ref`` (signed) and as ``np.abs(image)``."""
    shards = [tmp_path / "a.h5", tmp_path / "b.h5"]
    data = {
        "IXI003": make_test_shard(shards[0], "IXI003", n_slices=6, seed=2),
        "IXI007": make_test_shard(shards[1], "IXI007", n_slices=6, seed=1),
    }
    mask = sample_mask()
    models = {"Net-mse": tmp_path / "mse.pt", "Net-mse-dssim": tmp_path / "dssim.pt"}
    make_test_model(models["Net-mse"], mask, seed=0)
    make_test_model(models["Net-mse-dssim"], mask, seed=1)
    saved = saved_figures
    error_max = 0.15
    panels = make_figure2(
        shards, models, mask=mask, png=tmp_path / "f.png", pdf=None, dpi=40, error_max=error_max
    )
    assert len(saved) == 1
    grid = _grid(saved[0])
    columns = ["input (zero-filled)", *models]
    assert max(grid) == (3 * len(panels) - 1, len(columns))
    checked = 0
    for p, panel in enumerate(panels):
        d = data[panel.subject]
        position = int(np.flatnonzero(d["slice_index"] == panel.slice)[0])
        reference = d["target"][position].astype(np.float64)
        zero_filled = zero_filled_magnitude(d["kspace"][position])
        estimates = {"input (zero-filled)": zero_filled}
        for name, path in models.items():
            volume = zero_filled_magnitude(d["kspace"])
            estimates[name] = _independent_network_output(path, zero_filled, volume)
        data_range = d["data_range"]
        shown_reference = np.flipud(reference.T)
        for c, label in enumerate(columns, start=1):
            estimate = estimates[label].astype(np.float64)
            image_ax, error_ax = grid[(3 * p, c)], grid[(3 * p + 2, c)]
            texts = [t.get_text() for t in image_ax.texts if _ANNOTATION.search(t.get_text())]
            assert len(texts) == 1, [t.get_text() for t in image_ax.texts]
            ssim_text, psnr_text = _ANNOTATION.search(texts[0]).groups()
            ssim, psnr = skimage_ssim_psnr(reference, estimate, data_range)
            assert ssim < 0.999 and psnr < 90  # the estimate really differs from the reference
            assert float(ssim_text) == pytest.approx(ssim, abs=5e-4 + 1e-5), (p, label)
            assert float(psnr_text) == pytest.approx(psnr, abs=5e-3 + 1e-4), (p, label)
            (shown,) = image_ax.get_images()
            np.testing.assert_allclose(
                shown.get_array(), np.flipud(estimate.T), rtol=1e-4, atol=1e-5
            )
            assert shown.get_clim() == pytest.approx((0.0, data_range))
            (error,) = error_ax.get_images()
            np.testing.assert_allclose(
                error.get_array(),
                np.abs(np.flipud(estimate.T) - shown_reference) / data_range,
                rtol=1e-4,
                atol=1e-5,
            )
            assert error.get_clim() == pytest.approx((0.0, error_max))
            checked += 1
        # no score on the reference, only the orientation letters
        assert sorted(t.get_text() for t in grid[(3 * p, 0)].texts) == ["A", "L", "P", "R"]
    assert checked == len(panels) * len(columns) == 6


def test_figure2_geometry_colour_bar_zoom_and_fonts(
    tmp_path: Path, saved_figures: list[Figure]
) -> None:
    """Padding cropped to the native extent, pixels drawn with their physical aspect (the rendered
    panel's width / height equals the slice's extent in mm), orientation letters, a colour bar
    labelled in the units of its ticks, a zoom region of at least 32 native pixels, and no Type 3
    font in the PDF.

    Mutations tried (each fails this test): ``aspect`` left out of ``imshow``; the native-extent
    crop left out; ``FONT_RC`` not applied when saving."""
    size, spacing, extent = 64, (1.2, 0.9375), (4, 60, 10, 54)
    prep = preprocessing(readout_axis=2, image_size=(size, size))
    mask = sample_mask(size=size)
    shard = tmp_path / "s.h5"
    data = make_test_shard(shard, "IXI002", n_slices=4, seed=3, mask=mask, prep=prep)
    set_slice_geometry(shard, spacing, extent)
    model = tmp_path / "net.pt"
    make_test_model(model, mask, prep=prep)
    saved = saved_figures
    pdf = tmp_path / "f.pdf"
    (panel, *_) = make_figure2(
        [shard], {"net": model}, mask=mask, png=None, pdf=pdf, dpi=40, zoom_size=0.1, error_max=0.3
    )
    grid = _grid(saved[0])
    position = int(np.flatnonzero(data["slice_index"] == panel.slice)[0])
    r0, r1, c0, c1 = extent
    cropped = np.flipud(data["target"][position][r0:r1, c0:c1].T)  # (W extent, H extent)
    (shown,) = grid[(0, 0)].get_images()
    np.testing.assert_array_equal(shown.get_array(), cropped)
    assert cropped.shape == (c1 - c0, r1 - r0) == (44, 56)
    fig = saved[0]
    fig.canvas.draw()
    width_mm, height_mm = (r1 - r0) * spacing[0], (c1 - c0) * spacing[1]
    for row in (0, 2):  # the image and the error map
        box = grid[(row, 1)].get_window_extent()
        assert box.width / box.height == pytest.approx(width_mm / height_mm, rel=0.03), row
    assert sorted(t.get_text() for t in grid[(0, 0)].texts) == ["A", "L", "P", "R"]
    positions = {t.get_text(): t.get_position() for t in grid[(0, 0)].texts}
    assert positions["R"][0] > 0.9 and positions["L"][0] < 0.1  # patient right on the right
    assert positions["A"][1] > 0.9 and positions["P"][1] < 0.1  # anterior up
    (zoom,) = grid[(1, 0)].get_images()
    assert zoom.get_array().shape == (MIN_ZOOM_PIXELS, MIN_ZOOM_PIXELS)  # 0.1 x 44 grown to 32
    (colour_bar,) = grid[(2, 0)].child_axes  # inset in the reference column's error row
    assert colour_bar.get_ylabel() == "|est − ref| / data range"
    ticks = [t for t in colour_bar.get_yticks() if 0 <= t <= 0.3 + 1e-9]
    assert ticks == pytest.approx([0.0, 0.1, 0.2, 0.3])  # fractions, as the label says
    assert colour_bar.get_ylim() == pytest.approx((0.0, 0.3))
    content = pdf.read_bytes()
    assert content[:5] == b"%PDF-" and b"/FontFile2" in content  # embedded TrueType
    assert b"/Type3" not in content and b"/Subtype /Type3" not in content
