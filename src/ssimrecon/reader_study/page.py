"""The self-contained HTML page of a reading session (no server: open the file in any browser).

The template, style and script are package data (``assets/page.html``, ``page.css``,
``page.js``); :func:`render_page` fills in the session as one JSON object:
``{session, tasks, criteria, positions, likert: [1, 5], zoom, trials: [{id, ratio, reference,
candidates}]}`` with the images as PNG data URIs in the order shown (``ratio``: displayed height /
width). Nothing method-specific goes in: the page's blinding rests on that, and
tests/reader_study checks it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.resources import files

from ssimrecon.reader_study.design import CRITERIA, LIKERT_MAX, LIKERT_MIN, POSITIONS, TASKS


@dataclass(frozen=True)
class PageTrial:
    """One trial as the page shows it: opaque id, displayed height / width, the reference and the
    reconstructions (PNG data URIs) left to right."""

    id: str
    ratio: float
    reference: str
    candidates: tuple[str, ...]


def _asset(name: str) -> str:
    return (files("ssimrecon.reader_study") / "assets" / name).read_text(encoding="utf-8")


def session_id(trials: Sequence[PageTrial], tasks: Sequence[str]) -> str:
    """12 hex digits of the SHA-256 of what the page shows: two sessions with other images or
    trials never share browser storage."""
    digest = hashlib.sha256(json.dumps([list(tasks), [asdict(t) for t in trials]]).encode())
    return "s" + digest.hexdigest()[:12]


def page_data(session: str, trials: Sequence[PageTrial], tasks: Sequence[str], zoom: float) -> dict:
    """The JSON object the page's script reads."""
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {list(tasks)}")
    n = {len(t.candidates) for t in trials}
    if len(n) != 1:
        raise ValueError(f"every trial must show the same number of reconstructions, got {n}")
    return {
        "session": session,
        "tasks": list(tasks),
        "criteria": [asdict(c) for c in CRITERIA],
        "positions": list(POSITIONS[: n.pop()]),
        "likert": [LIKERT_MIN, LIKERT_MAX],
        "zoom": zoom,
        "trials": [{**asdict(t), "candidates": list(t.candidates)} for t in trials],
    }


def render_page(data: dict) -> str:
    """The HTML document: template + style + script + ``data`` (``</`` escaped inside the JSON)."""
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    html = _asset("page.html")
    for marker, value in (
        ("/*STYLE*/", _asset("page.css")),
        ("/*SCRIPT*/", _asset("page.js")),
        ("/*DATA*/", text),
    ):
        html = html.replace(marker, value, 1)
    return html
