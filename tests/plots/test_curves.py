"""curves.py: shared validation quantities compared across networks, each network's own loss in its
own panel, integer epoch ticks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ssimrecon.errors import SsimreconError
from ssimrecon.plots import curves as curves_module
from ssimrecon.plots.curves import draw_training_curves, plot_training_curves, read_history
from ssimrecon.training.history import history_columns, write_history
from ssimrecon.training.records import balance_columns

LOSSES = {"Net-mse": {"mse": 1.0}, "Net-mse-dssim": {"mse": 1.0, "dssim": 0.1}}


def _history(terms: dict[str, float], epochs: int, seed: int) -> list[dict[str, float]]:
    """Rows of a plausible history.csv: terms decay, the composite is their weighted sum."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(1, epochs + 1):
        mse, dssim = 0.01 / e + 1e-4 * rng.random(), 0.3 / e**0.5
        row: dict[str, float] = {"epoch": e}
        for split, factor in (("train", 1.0), ("val", 1.1)):
            values = {"mse": factor * mse, "dssim": factor * dssim}
            row.update({f"{split}_{t}": values[t] for t in terms})
            row[f"{split}_loss"] = sum(w * values[t] for t, w in terms.items())
        row.update(
            val_mse=1.1 * mse, val_ssim=1 - 1.1 * dssim, val_psnr=10 * np.log10(1 / (1.1 * mse))
        )
        row.update(seconds=1.0, slices_per_s=10.0, lr=1e-3)
        row.update(dict.fromkeys(balance_columns(list(terms)), 2.0))  # several terms only
        rows.append(row)
    return rows


def _write(tmp_path: Path, epochs: int = 3) -> dict[str, Path]:
    paths = {}
    for i, (name, terms) in enumerate(LOSSES.items()):
        paths[name] = tmp_path / f"{name}.csv"
        write_history(paths[name], _history(terms, epochs, i), list(terms))
    return paths


def _lines(ax: Axes) -> list:
    """The curves of a panel (markers of the best epoch left out)."""
    return [line for line in ax.get_lines() if len(line.get_xdata()) > 1]


def test_shared_panels_compare_networks_and_own_losses_stay_apart(tmp_path: Path) -> None:
    """Mutations tried (each fails this test): both networks' losses drawn into one panel (the old
    layout), and the epoch locator left at matplotlib's default (ticks 0.0, 0.5, ...)."""
    paths = _write(tmp_path)
    tables = {name: read_history(path) for name, path in paths.items()}
    fig = draw_training_curves(tables)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in visible]
    assert titles == [
        "Validation MSE",
        "Validation SSIM",
        "Validation PSNR",
        "Net-mse: its own loss",
        "Net-mse-dssim: its own loss",
    ]
    by_title = dict(zip(titles, visible))
    for title, column in (
        ("Validation MSE", "val_mse"),
        ("Validation SSIM", "val_ssim"),
        ("Validation PSNR", "val_psnr"),
    ):
        lines = _lines(by_title[title])
        assert [line.get_label() for line in lines] == list(LOSSES)  # one line per network
        for line, table in zip(lines, tables.values()):
            np.testing.assert_allclose(line.get_ydata(), table[column])
    assert by_title["Validation MSE"].get_yscale() == "log"
    assert by_title["Validation PSNR"].get_ylabel() == "PSNR (dB)"
    for name, table in tables.items():
        ax = by_title[f"{name}: its own loss"]
        lines = _lines(ax)
        assert [line.get_label() for line in lines] == ["training", "validation"]
        np.testing.assert_allclose(lines[0].get_ydata(), table["train_loss"])
        np.testing.assert_allclose(lines[1].get_ydata(), table["val_loss"])
        terms = " + ".join(LOSSES[name])
        assert ax.get_ylabel() == f"loss (weighted {terms})"
        best = int(table.loc[table["val_loss"].idxmin(), "epoch"])
        assert any(f"best (epoch {best})" == line.get_label() for line in ax.get_lines())
    fig.canvas.draw()  # ticks are placed at draw time
    for ax in visible:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
        assert ax.get_xlabel() == "epoch"


def test_plot_writes_png_and_names_bad_files(tmp_path: Path) -> None:
    paths = _write(tmp_path, epochs=3)
    png = plot_training_curves(paths, tmp_path / "curves.png", dpi=40)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    old = tmp_path / "old.csv"  # a history without the validation MSE
    frame = pd.DataFrame(_history({"mse": 1.0}, 2, 0)).drop(columns=["val_mse"])
    frame.to_csv(old, index=False)
    with pytest.raises(SsimreconError, match=r"old\.csv.*val_mse"):
        read_history(old)
    with pytest.raises(SsimreconError, match="no history"):
        draw_training_curves({})
    assert set(history_columns(["mse"])) >= set(curves_module.REQUIRED)


def test_one_network_figure_has_its_loss_panel(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    write_history(path, _history({"mse": 1.0}, 4, 0), ["mse"])
    fig = draw_training_curves({"only": read_history(path)})
    assert isinstance(fig, Figure)
    visible = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert visible[-1] == "only: its own loss" and len(visible) == 4
