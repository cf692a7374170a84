"""What a reading session asks: the tasks, the Likert criteria and their anchors, the positions.

One home for the names the page, the exported answers and the analysis share.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the reader picks the better reconstruction (forced choice; two-alternative with two methods)
CHOICE = "choice"
#: the reader scores each reconstruction 1-5 on every criterion
LIKERT = "likert"
TASKS = (CHOICE, LIKERT)
#: labels of the reconstructions' positions on the page, left to right
POSITIONS = "ABCDEF"
#: the Likert scale: integer scores LIKERT_MIN..LIKERT_MAX, higher is better on every criterion
LIKERT_MIN, LIKERT_MAX = 1, 5


@dataclass(frozen=True)
class Criterion:
    """One Likert question: its CSV column, label and the anchors of score 1 and score 5."""

    key: str
    label: str
    low: str
    high: str


CRITERIA = (
    Criterion("sharpness", "Sharpness", "1 = very blurred", "5 = as sharp as the reference"),
    Criterion("artefacts", "Artefacts", "1 = severe artefacts", "5 = no artefacts"),
    Criterion(
        "diagnostic_quality", "Diagnostic quality", "1 = non-diagnostic", "5 = fully diagnostic"
    ),
)
CRITERION_KEYS = tuple(c.key for c in CRITERIA)
