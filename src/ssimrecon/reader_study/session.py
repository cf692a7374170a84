"""Make a reading session: draw the trials, reconstruct their slices, write the page and the key.

:func:`make_session` reads the test shards, runs the networks (the inference of Figure 2:
:func:`ssimrecon.plots.figure2.load_panels`) and calls :func:`build_session`, which takes the
images themselves (tests give it synthetic reconstructions). Every image is shown as Figure 2
shows it: the slice's native extent in display orientation, grey window 0..data_range, the
physical pixel aspect.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssimrecon.atomic import write_text_atomic
from ssimrecon.config.runs import ZERO_FILLED
from ssimrecon.errors import SsimreconError
from ssimrecon.reader_study.images import png_data_uri
from ssimrecon.reader_study.key import write_key
from ssimrecon.reader_study.page import PageTrial, page_data, render_page, session_id
from ssimrecon.reader_study.trials import Trial, draw_trials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShownSlice:
    """What one slice looks like on the page: reference and each method's image, (H, W) float32
    as displayed (native extent, display orientation), their grey window top ``data_range`` and
    the displayed pixel's height / width."""

    reference: np.ndarray
    methods: Mapping[str, np.ndarray]
    data_range: float
    pixel_aspect: float


def page_trials(trials: Sequence[Trial], shown: Mapping[tuple[str, int], ShownSlice]) -> list:
    """The page's trials: each slice's images encoded once, in each trial's order."""
    encoded: dict[tuple[str, int], tuple[str, dict[str, str], float]] = {}
    for place, view in shown.items():
        h, w = view.reference.shape
        encoded[place] = (
            png_data_uri(view.reference, view.data_range),
            {m: png_data_uri(image, view.data_range) for m, image in view.methods.items()},
            h * view.pixel_aspect / w,
        )
    out = []
    for trial in trials:
        reference, methods, ratio = encoded[(trial.subject, trial.slice)]
        out.append(
            PageTrial(trial.trial, ratio, reference, tuple(methods[m] for m in trial.methods))
        )
    return out


def build_session(
    trials: Sequence[Trial],
    shown: Mapping[tuple[str, int], ShownSlice],
    methods: Sequence[str],
    *,
    tasks: Sequence[str],
    zoom: float,
    html: Path,
    key: Path,
) -> str:
    """Write the page ``html`` and the key ``key`` of ``trials``; returns the session id."""
    for place in {(t.subject, t.slice) for t in trials}:
        if place not in shown:
            raise SsimreconError(f"reader study: no images of subject {place[0]} slice {place[1]}")
    shown_trials = page_trials(trials, shown)
    session = session_id(shown_trials, tasks)
    document = render_page(page_data(session, shown_trials, tasks, zoom))
    write_key(Path(key), session, trials, methods)
    write_text_atomic(html, document)
    return session


def make_session(
    shard_paths: Sequence[Path | str],
    models: Mapping[str, Path],
    *,
    methods: Sequence[str],
    mask: np.ndarray,
    trials: int,
    repeats: int,
    seed: int,
    tasks: Sequence[str],
    zoom: float,
    min_signal_fraction: float,
    html: Path,
    key: Path,
    device: str = "auto",
) -> tuple[str, list[Trial]]:
    """Draw the trials from the shards' slices, reconstruct them with ``mask`` (H, W) bool and
    ``models`` (name -> bundle; ``methods`` may also name :data:`ZERO_FILLED`), write the page
    and the key; returns (session id, trials)."""
    from ssimrecon.plots.figure2 import collect_candidates, load_panels

    wanted = [m for m in methods if m != ZERO_FILLED]
    unknown = sorted(set(wanted) - set(models))
    if unknown:
        raise SsimreconError(f"reader study: method {unknown[0]} has no --model")
    candidates = collect_candidates(shard_paths)
    drawn = draw_trials(
        candidates,
        methods,
        trials=trials,
        repeats=repeats,
        seed=seed,
        min_signal_fraction=min_signal_fraction,
    )
    places = sorted({(t.subject, t.slice) for t in drawn})
    panels = load_panels(
        candidates, places, {m: models[m] for m in wanted}, mask=mask, device=device
    )
    shown = {}
    for panel in panels:
        images = {ZERO_FILLED: panel.zero_filled, **panel.networks}
        shown[(panel.subject, panel.slice)] = ShownSlice(
            panel.shown(panel.reference),
            {m: panel.shown(images[m]) for m in methods},
            panel.data_range,
            panel.aspect,
        )
    session = build_session(drawn, shown, methods, tasks=tasks, zoom=zoom, html=html, key=key)
    log.info(
        "reader study %s: %d trials (%d repeats) of %d slices, %d subjects -> %s, key %s",
        session,
        len(drawn),
        repeats,
        len(places),
        len({s for s, _ in places}),
        html,
        key,
    )
    return session, drawn
