"""The paper's Figure 2: reference, zero-filled input and each network on two test slices.

Layout, per chosen slice, three rows with one column per image (reference, input (zero-filled), then
each network in the order given):
1. the images (grey, vmin 0, vmax data_range) with the zoom region outlined, SSIM / PSNR written on
   every non-reference panel (of the whole slice: the numbers of the evaluation) and the orientation
   letters at the edges of the reference panel;
2. the zoom region, magnified (nearest neighbour), same grey scale;
3. error maps ``|est - ref| / data_range`` on one colour scale ``[0, error_max]`` (colour bar,
   labelled in those units, in the reference column).

Geometry: only the slice's native extent (shard attribute ``native_extent``: zero padding cropped)
is drawn, with the physical pixel aspect of ``pixel_spacing`` (mm).  Slices are shown in display
orientation ``flipud(slice.T)``: the second in-plane RAS axis points up (anterior for axial slices),
the first to the right (patient right on the viewer's right: neurological convention);
:func:`orientation_letters` names the edges.  ``zoom_center = (fy, fx)`` are fractions of the
displayed panel's height (from the top) and width (from the left); ``zoom_size`` is the side of the
square zoom region (in pixels) as a fraction of the smaller panel side, grown to at least
:data:`MIN_ZOOM_PIXELS` native pixels (or the whole panel side when that is smaller).

Slice choice (:func:`choose_slices`), by default: among slices with ``slice_signal >=
min_signal_fraction``, take the first two subjects in sorted order and in each the slice with the
largest ``slice_signal`` (ties: the lower slice index). With a single subject: its largest-signal
slice and the largest-signal slice at least ``min_gap`` (10) slice indices away from it (if none is
that far, the largest-signal other slice). ``subjects`` and/or ``slices`` force the choice (a single
subject with two slices shows both slices of that subject).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ssimrecon.atomic import atomic_output
from ssimrecon.device import pick_device
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.evaluate import load_model, shard_preprocessing
from ssimrecon.evaluation.inference import check_model_matches, predict_slices
from ssimrecon.functional.metrics import slice_metrics
from ssimrecon.kspace.shards import ShardReader
from ssimrecon.nn.reconstructor import Physics

log = logging.getLogger(__name__)

N_SLICES = 2
ZOOM_COLOR = "#ffd21f"
#: smallest side of the zoom region in native slice pixels (a smaller zoom_size is grown to it)
MIN_ZOOM_PIXELS = 32
#: letters of the positive and negative direction of each RAS axis
POSITIVE, NEGATIVE = "RAS", "LPI"
#: rcParams of every saved figure: TrueType (Type 42) fonts in PDF/PS, never Type 3
FONT_RC = {"pdf.fonttype": 42, "ps.fonttype": 42}


def collect_candidates(shard_paths: Sequence[Path | str]) -> pd.DataFrame:
    """All slices of the shards: columns subject, slice (slice_index), slice_signal, shard,
    position."""
    frames = []
    seen: dict[str, Path] = {}
    for path in map(Path, shard_paths):
        with ShardReader(path) as reader:
            subject = str(reader.attrs["subject"])
            if subject in seen:
                raise SsimreconError(
                    f"subject {subject} appears in two shards: {seen[subject]} and {path}"
                )
            seen[subject] = path
            frames.append(
                pd.DataFrame(
                    {
                        "subject": subject,
                        "slice": np.asarray(reader.slice_index, dtype=int),
                        "slice_signal": np.asarray(reader.slice_signal, dtype=float),
                        "shard": str(path),
                        "position": np.arange(reader.num_slices),
                    }
                )
            )
    if not frames:
        raise SsimreconError("figure2: no shards given")
    return pd.concat(frames, ignore_index=True)


def _best(rows: pd.DataFrame) -> int:
    """Slice index with the largest slice_signal (ties: the lowest index)."""
    ordered = rows.sort_values(["slice_signal", "slice"], ascending=[False, True])
    return int(ordered["slice"].iloc[0])


def choose_slices(
    candidates: pd.DataFrame,
    min_signal_fraction: float,
    *,
    subjects: Sequence[str] | None = None,
    slices: Sequence[int] | None = None,
    min_gap: int = 10,
) -> list[tuple[str, int]]:
    """(subject, slice) pairs to show, by the rule in the module docstring (at most two)."""
    candidates = candidates.assign(subject=candidates["subject"].astype(str))
    pool = candidates[candidates["slice_signal"] >= min_signal_fraction]
    subjects = [str(s) for s in subjects] if subjects else None
    for subject in subjects or []:
        if subject not in set(candidates["subject"]):
            raise SsimreconError(
                f"figure2: subject {subject!r} is not in the shards "
                f"({', '.join(sorted(set(candidates['subject'])))})"
            )
    if slices:
        if len(slices) > N_SLICES:
            raise SsimreconError(f"figure2: at most {N_SLICES} slices, got {list(slices)}")
        if subjects is None:
            names = sorted(set(pool["subject"]) or set(candidates["subject"]))
            subjects = names[: len(slices)] if len(names) >= len(slices) else names[:1]
        if len(subjects) == 1:
            subjects = subjects * len(slices)
        if len(subjects) != len(slices):
            raise SsimreconError(f"figure2: {len(subjects)} subjects but {len(slices)} slices")
        chosen = [(s, int(i)) for s, i in zip(subjects, slices)]
        have = set(zip(candidates["subject"], candidates["slice"].astype(int)))
        for pair in chosen:
            if pair not in have:
                raise SsimreconError(
                    f"figure2: subject {pair[0]} has no slice {pair[1]} in its shard"
                )
        return chosen
    names = subjects if subjects is not None else sorted(set(pool["subject"]))
    if not names:
        raise SsimreconError(f"figure2: no slice has slice_signal >= {min_signal_fraction}")
    for name in names:
        if not (pool["subject"] == name).any():
            raise SsimreconError(
                f"figure2: subject {name} has no slice with slice_signal >= {min_signal_fraction}"
            )
    if len(names) >= N_SLICES:
        return [(name, _best(pool[pool["subject"] == name])) for name in names[:N_SLICES]]
    rows = pool[pool["subject"] == names[0]]
    first = _best(rows)
    others = rows[rows["slice"] != first]
    if others.empty:
        return [(names[0], first)]
    far = others[(others["slice"] - first).abs() >= min_gap]
    if far.empty:
        log.warning(
            "figure2: no slice of %s is %d slices away from slice %d; taking the next best",
            names[0],
            min_gap,
            first,
        )
        far = others
    return [(names[0], first), (names[0], _best(far))]


@dataclass
class Panel:
    """One chosen slice: reference, zero-filled input and each network's output (H, W) float32, with
    the shard's slice geometry (readout axis, pixel spacing in mm of H and W, native extent
    ``(row_start, row_stop, col_start, col_stop)``)."""

    subject: str
    slice: int
    data_range: float
    reference: np.ndarray
    zero_filled: np.ndarray
    readout_axis: int
    pixel_spacing: tuple[float, float]
    native_extent: tuple[int, int, int, int]
    networks: dict[str, np.ndarray] = field(default_factory=dict)

    def estimates(self) -> dict[str, np.ndarray]:
        """Column label -> image for every non-reference column."""
        return {"input (zero-filled)": self.zero_filled, **self.networks}

    def shown(self, image: np.ndarray) -> np.ndarray:
        """The displayed array of a slice (H, W): its native extent in display orientation."""
        r0, r1, c0, c1 = self.native_extent
        return display(np.asarray(image)[r0:r1, c0:c1])

    @property
    def aspect(self) -> float:
        """Height / width of one displayed pixel (mm / mm): display rows run along W, columns along
        H."""
        return self.pixel_spacing[1] / self.pixel_spacing[0]


def load_panels(
    candidates: pd.DataFrame,
    chosen: Sequence[tuple[str, int]],
    models: dict[str, Path],
    *,
    mask: np.ndarray,
    device: str | torch.device = "auto",
) -> list[Panel]:
    """Read the chosen slices undersampled with ``mask`` (H, W) bool and run every model on
    them."""
    dev = pick_device(device) if isinstance(device, str) else device
    loaded = {name: load_model(path, dev) for name, path in models.items()}
    panels = []
    for subject, index in chosen:
        row = candidates[
            (candidates["subject"].astype(str) == subject) & (candidates["slice"] == index)
        ].iloc[0]
        with ShardReader(row["shard"], mask) as reader:
            position = int(row["position"])
            kspace, target = reader.read_slice(position)
            data_range = float(reader.attrs["data_range"])
            scale = reader.input_scale()
            zero_filled = np.abs(reader.zero_filled(kspace[None], [position]))[0]
            sensitivities = reader.slice_sensitivities(position)
            geometry = (
                int(reader.attrs["readout_axis"]),
                reader.pixel_spacing,
                reader.native_extent,
            )
            for name, (_, bundle) in loaded.items():
                check_model_matches(
                    bundle,
                    mask=reader.mask,
                    preprocessing=shard_preprocessing(reader),
                    model_path=models[name],
                    data_path=row["shard"],
                )
        panel = Panel(
            subject,
            int(index),
            data_range,
            target.astype(np.float32),
            zero_filled.astype(np.float32),
            *geometry,
        )
        for name, (model, bundle) in loaded.items():
            panel.networks[name] = predict_slices(
                model,
                kspace[None],
                batch_size=1,
                device=dev,
                input_scale=scale,
                physics=Physics.of_bundle(bundle),
                mask=mask,
                sensitivities=sensitivities,
            )[0]
        panels.append(panel)
    return panels


def display(image: np.ndarray) -> np.ndarray:
    """Slice (H, W) in RAS order -> display array: second axis up, first axis to the right."""
    return np.flipud(np.asarray(image).T)


def orientation_letters(readout_axis: int) -> dict[str, str]:
    """Patient direction at each edge of a displayed slice (``left``, ``right``, ``top``,
    ``bottom``) for slices taken along RAS axis ``readout_axis``: the first in-plane axis points
    right, the second up (:func:`display`)."""
    first, second = (a for a in range(3) if a != readout_axis)
    return {
        "left": NEGATIVE[first],
        "right": POSITIVE[first],
        "top": POSITIVE[second],
        "bottom": NEGATIVE[second],
    }


def zoom_box(
    shape: tuple[int, int], center: tuple[float, float], size: float
) -> tuple[int, int, int]:
    """(top, left, side) in display pixels of the square zoom region, clipped into the panel.

    ``side`` is ``size`` times the smaller panel side, at least :data:`MIN_ZOOM_PIXELS` (at most the
    smaller panel side)."""
    h, w = shape
    if not (0 <= center[0] <= 1 and 0 <= center[1] <= 1):
        raise SsimreconError(f"figure2: zoom_center fractions must be in [0, 1], got {center}")
    if not 0 < size <= 1:
        raise SsimreconError(f"figure2: zoom_size must be in (0, 1], got {size}")
    side = max(MIN_ZOOM_PIXELS, int(round(size * min(h, w))))
    side = min(side, h, w)
    top = int(round(center[0] * h - side / 2))
    left = int(round(center[1] * w - side / 2))
    return min(max(top, 0), h - side), min(max(left, 0), w - side), side


def _orientation(ax: Axes, letters: dict[str, str]) -> None:
    """Write the orientation letters just inside the edges of an image panel."""
    style = {"transform": ax.transAxes, "color": ZOOM_COLOR, "fontsize": 8, "fontweight": "bold"}
    ax.text(0.03, 0.5, letters["left"], ha="left", va="center", **style)
    ax.text(0.97, 0.5, letters["right"], ha="right", va="center", **style)
    ax.text(0.5, 0.97, letters["top"], ha="center", va="top", **style)
    ax.text(0.5, 0.03, letters["bottom"], ha="center", va="bottom", **style)


def draw_figure2(
    panels: Sequence[Panel],
    *,
    zoom_center: tuple[float, float] = (0.45, 0.55),
    zoom_size: float = 0.25,
    error_max: float = 0.2,
) -> Figure:
    """The figure (see the module docstring) as a matplotlib Figure."""
    if not panels:
        raise SsimreconError("figure2: nothing to draw")
    if not error_max > 0:
        raise SsimreconError(f"figure2: error_max must be > 0, got {error_max}")
    columns = ["reference", *panels[0].estimates()]
    n_cols, n_rows = len(columns), 3 * len(panels)
    boxes, heights = [], []
    for panel in panels:
        shape = panel.shown(panel.reference).shape
        boxes.append(zoom_box(shape, zoom_center, zoom_size))
        # physical height / width of the panel, of the zoom region, of the error map
        ratio = shape[0] * panel.aspect / shape[1]
        heights += [ratio, panel.aspect, ratio]
    width = 2.1
    fig = Figure(figsize=(width * n_cols, width * sum(heights) + 0.4), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, gridspec_kw={"height_ratios": heights})
    for p, (panel, (top, left, side)) in enumerate(zip(panels, boxes)):
        ref = panel.shown(panel.reference)
        if side > round(zoom_size * min(ref.shape)):
            log.info("figure2: zoom region grown to %dx%d pixels (MIN_ZOOM_PIXELS)", side, side)
        crop = (slice(top, top + side), slice(left, left + side))
        images = {"reference": ref, **{k: panel.shown(v) for k, v in panel.estimates().items()}}
        grey = {"cmap": "gray", "vmin": 0, "vmax": panel.data_range, "interpolation": "nearest"}
        err_im = None
        for c, (label, image) in enumerate(images.items()):
            ax_img, ax_zoom, ax_err = axes[3 * p, c], axes[3 * p + 1, c], axes[3 * p + 2, c]
            ax_img.imshow(image, aspect=panel.aspect, **grey)
            ax_img.add_patch(
                Rectangle(
                    (left - 0.5, top - 0.5), side, side, fill=False, edgecolor=ZOOM_COLOR, lw=1.2
                )
            )
            ax_zoom.imshow(image[crop], aspect=panel.aspect, **grey)
            for spine in ax_zoom.spines.values():
                spine.set_edgecolor(ZOOM_COLOR)
                spine.set_linewidth(1.5)
            if p == 0:
                ax_img.set_title(label, fontsize=10)
            if c == 0:
                ax_img.set_ylabel(f"{panel.subject}\nslice {panel.slice}", fontsize=9)
                ax_zoom.set_ylabel(f"zoom ({side}×{side} px)", fontsize=9)
                _orientation(ax_img, orientation_letters(panel.readout_axis))
                ax_err.axis("off")
                continue
            m = slice_metrics(
                panel.reference, np.asarray(panel.estimates()[label]), panel.data_range
            )
            ax_img.text(
                0.02,
                0.02,
                f"SSIM {m['ssim']:.3f}\nPSNR {m['psnr']:.2f} dB",
                transform=ax_img.transAxes,
                color="white",
                fontsize=7.5,
                va="bottom",
                ha="left",
                bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.5, "edgecolor": "none"},
            )
            err_im = ax_err.imshow(
                np.abs(image - ref) / panel.data_range,
                cmap="inferno",
                vmin=0,
                vmax=error_max,
                interpolation="nearest",
                aspect=panel.aspect,
            )
            if c == 1:
                ax_err.set_ylabel("error map", fontsize=9)
        cax = axes[3 * p + 2, 0].inset_axes([0.62, 0.05, 0.1, 0.9])
        bar = fig.colorbar(err_im, cax=cax)
        bar.ax.tick_params(labelsize=7)
        cax.yaxis.set_ticks_position("left")
        cax.yaxis.set_label_position("left")
        bar.set_label("|est − ref| / data range", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _save(fig: Figure, path: Path, fmt: str, dpi: int) -> None:
    """Save atomically with :data:`FONT_RC` (TrueType fonts in the PDF)."""
    with matplotlib.rc_context(FONT_RC), atomic_output(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)


def make_figure2(
    shard_paths: Sequence[Path | str],
    models: dict[str, Path],
    *,
    mask: np.ndarray,
    png: Path | None,
    pdf: Path | None,
    zoom_center: tuple[float, float] = (0.45, 0.55),
    zoom_size: float = 0.25,
    error_max: float = 0.2,
    dpi: int = 150,
    min_signal_fraction: float = 0.05,
    subjects: Sequence[str] | None = None,
    slices: Sequence[int] | None = None,
    device: str = "auto",
) -> list[Panel]:
    """Choose slices, undersample them with ``mask`` (H, W) bool, run the models, draw and save
    the figure; returns the panels shown."""
    candidates = collect_candidates(shard_paths)
    chosen = choose_slices(candidates, min_signal_fraction, subjects=subjects, slices=slices)
    panels = load_panels(candidates, chosen, models, mask=mask, device=device)
    fig = draw_figure2(panels, zoom_center=zoom_center, zoom_size=zoom_size, error_max=error_max)
    if png is not None:
        _save(fig, Path(png), "png", dpi)
    if pdf is not None:
        _save(fig, Path(pdf), "pdf", dpi)
    return panels
