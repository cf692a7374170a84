"""Reader-study sessions of synthetic reconstructions (a page and its key, no trained model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: the methods of the synthetic reader-study sessions, baseline first
READER_METHODS = ("Net-mse", "Net-mse-dssim")


def synthetic_method_image(reference: np.ndarray, method_index: int) -> np.ndarray:
    """The synthetic reconstruction of method ``method_index``: the reference dimmed by a
    method-specific factor (each method's image is told apart by its pixels)."""
    return (reference * (0.55 + 0.2 * method_index)).astype(np.float32)


def write_synthetic_session(
    folder: Path,
    *,
    methods: tuple[str, ...] = READER_METHODS,
    subjects: int = 3,
    slices: int = 5,
    trials: int = 8,
    repeats: int = 2,
    seed: int = 1,
    tasks: tuple[str, ...] = ("choice", "likert"),
) -> dict[str, Any]:
    """A reader-study page (``folder/page/reader-study.html``) and key (``folder/key.csv``) of
    ``trials`` + ``repeats`` trials drawn from ``subjects`` x ``slices`` random 12x16 slices
    (pixel aspect 1.25); returns the paths, the session id, the trials and the shown slices."""
    import pandas as pd

    from ssimrecon.reader_study.session import ShownSlice, build_session
    from ssimrecon.reader_study.trials import draw_trials

    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        [(f"SUBJ{s:02d}", 10 + i, 0.5) for s in range(subjects) for i in range(slices)],
        columns=["subject", "slice", "slice_signal"],
    )
    drawn = draw_trials(
        table, methods, trials=trials, repeats=repeats, seed=seed, min_signal_fraction=0.1
    )
    shown = {}
    for subject, index in sorted({(t.subject, t.slice) for t in drawn}):
        reference = rng.random((12, 16)).astype(np.float32)
        images = {m: synthetic_method_image(reference, i) for i, m in enumerate(methods)}
        shown[(subject, index)] = ShownSlice(reference, images, 1.0, 1.25)
    html, key = folder / "page" / "reader-study.html", folder / "key.csv"
    html.parent.mkdir(parents=True, exist_ok=True)
    session = build_session(drawn, shown, methods, tasks=tasks, zoom=3, html=html, key=key)
    return {"html": html, "key": key, "session": session, "trials": drawn, "shown": shown}
