"""``ssimrecon reader-study analyze``: answers checked against the key, and the statistics of
answers whose preferences and scores are set by construction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ssimrecon.cli import main
from ssimrecon.reader_study.analysis import analyze
from ssimrecon.reader_study.answers import ANSWER_COLUMNS, read_answers
from ssimrecon.reader_study.design import CRITERION_KEYS
from ssimrecon.reader_study.key import methods_in_order, read_key
from ssimrecon.reader_study.statistics import clopper_pearson, cohen_kappa, fleiss_kappa
from tests.helpers.reader_study import READER_METHODS, write_synthetic_session

BASE, PROPOSED = READER_METHODS

#: (trial row of the key) -> (method chosen, {method: score on every criterion})
Script = Callable[[pd.Series], tuple[str, dict[str, int]]]


def write_answers(path: Path, key: pd.DataFrame, reader: str, script: Script) -> Path:
    """An answers CSV as the page exports it, answering every trial by ``script``."""
    rows = []
    for _, trial in key.drop_duplicates("trial").iterrows():
        chosen, scores = script(trial)
        for _, shown in key[key["trial"] == trial["trial"]].iterrows():
            rows.append(
                {
                    "session": shown["session"],
                    "reader": reader,
                    "trial": shown["trial"],
                    "sequence": shown["sequence"],
                    "position": shown["position"],
                    "chosen": int(shown["method"] == chosen),
                    **{c: scores[shown["method"]] for c in CRITERION_KEYS},
                    "complete": 1,
                    "seconds": 2.5,
                }
            )
    pd.DataFrame(rows, columns=list(ANSWER_COLUMNS)).to_csv(path, index=False)
    return path


@pytest.fixture
def session(tmp_path: Path) -> dict:
    """A synthetic session: 4 subjects x 6 slices, 12 first readings and 4 repeats."""
    made = write_synthetic_session(tmp_path, subjects=4, slices=6, trials=12, repeats=4)
    made["table"] = read_key(made["key"])
    return made


def _prefer_on_subject(subjects: set[str]) -> Script:
    """Chooses PROPOSED on the given subjects, BASE elsewhere; scores 4 and 2."""

    def script(trial: pd.Series) -> tuple[str, dict[str, int]]:
        chosen = PROPOSED if trial["subject"] in subjects else BASE
        return chosen, {m: 4 if m == chosen else 2 for m in READER_METHODS}

    return script


def test_preference_per_reader_is_exact_and_pooled_is_clustered_by_subject(
    tmp_path: Path, session: dict
) -> None:
    key = session["table"]
    subjects = sorted(set(key["subject"]))
    scripts = {
        "R1": _prefer_on_subject(set(subjects[:3])),
        "R2": _prefer_on_subject(set(subjects[:2])),
        "R3": _prefer_on_subject(set(subjects)),
    }
    paths = [write_answers(tmp_path / f"{r}.csv", key, r, s) for r, s in scripts.items()]
    results = analyze(read_answers(paths, key), methods_in_order(key))
    first = key[key["repeat_of"] == ""].drop_duplicates("trial")
    per_subject = first["subject"].value_counts()
    preference = results[results["analysis"] == "preference"].set_index("reader")
    for reader, chosen in (("R1", subjects[:3]), ("R2", subjects[:2]), ("R3", subjects)):
        wins = int(per_subject[list(chosen)].sum())
        expected = clopper_pearson(wins, len(first))
        row = preference.loc[reader]
        assert (row["method"], row["versus"], row["n"]) == (PROPOSED, BASE, len(first))
        assert row["estimate"] == pytest.approx(wins / len(first))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((expected.low, expected.high))
        assert row["p_value"] == pytest.approx(expected.p_value)
    pooled = preference.loc["pooled"]
    # subjects 0 and 1: 3 of 3 readers prefer PROPOSED, subject 2: 2 of 3, subject 3: 1 of 3
    assert pooled["note"] == f"3 subjects prefer {PROPOSED}, 1 {BASE}, 0 tied"
    assert pooled["p_value"] == pytest.approx(clopper_pearson(3, 4).p_value)  # sign test
    assert pooled["n"] == 3 * len(first) and pooled["n_subjects"] == 4
    assert pooled["ci_low"] < pooled["estimate"] < pooled["ci_high"]

    agreement = results[(results["analysis"] == "agreement") & (results["criterion"] == "choice")]
    chosen = {
        r: [PROPOSED if s in c else BASE for s in first["subject"]]
        for r, c in (("R1", subjects[:3]), ("R2", subjects[:2]), ("R3", subjects))
    }
    counts = np.array(
        [
            [sum(chosen[r][i] == m for r in chosen) for m in READER_METHODS]
            for i in range(len(first))
        ]
    )
    assert agreement["measure"].iloc[0] == "Fleiss' kappa"
    assert agreement["estimate"].iloc[0] == pytest.approx(fleiss_kappa(counts))


def test_likert_paired_differences_consistency_and_two_reader_kappa(
    tmp_path: Path, session: dict
) -> None:
    key = session["table"]
    always = _prefer_on_subject(set(key["subject"]))
    flips: list[str] = []

    def changes_mind_on_repeats(trial: pd.Series) -> tuple[str, dict[str, int]]:
        if trial["repeat_of"] and not flips:
            flips.append(trial["trial"])
            return BASE, {BASE: 3, PROPOSED: 3}
        return always(trial)

    paths = [
        write_answers(tmp_path / "R1.csv", key, "R1", always),
        write_answers(tmp_path / "R2.csv", key, "R2", changes_mind_on_repeats),
    ]
    results = analyze(read_answers(paths, key), methods_in_order(key))
    paired = results[(results["analysis"] == "likert_paired") & (results["reader"] == "R1")]
    assert set(paired["criterion"]) == set(CRITERION_KEYS)
    assert (paired["estimate"] == 2).all() and (paired["n"] == 12).all()
    assert paired["p_value"].iloc[0] == pytest.approx(2 / 2**12)  # exact: every difference +2
    means = results[(results["analysis"] == "likert") & (results["reader"] == "pooled")]
    assert set(means.loc[means["method"] == PROPOSED, "estimate"]) == {4.0}
    consistency = results[results["analysis"] == "consistency"].set_index(["reader", "criterion"])
    assert consistency.loc[("R1", "choice"), "estimate"] == 1.0
    assert consistency.loc[("R2", "choice"), "estimate"] == pytest.approx(3 / 4)
    assert consistency.loc[("R2", "sharpness"), "estimate"] == pytest.approx(6 / 8)
    agreement = results[results["analysis"] == "agreement"].set_index("criterion")
    assert agreement.loc["choice", "measure"] == "Cohen's kappa"
    assert np.isnan(agreement.loc["choice", "estimate"])  # both always chose PROPOSED
    assert agreement.loc["sharpness", "measure"] == "quadratic-weighted Cohen's kappa"
    assert agreement.loc["sharpness", "estimate"] == pytest.approx(
        cohen_kappa([4, 2] * 12, [4, 2] * 12, weights="quadratic")
    )


def _analyze(tmp_path: Path, key: Path, *answers: Path) -> int:
    out = tmp_path / "out"
    return main(
        ["reader-study", "analyze", *map(str, answers), "--key", str(key)]
        + ["--csv", str(out / "r.csv"), "--md", str(out / "r.md"), "--png", str(out / "r.png")]
    )


def test_analyze_writes_the_table_the_rules_and_the_figure(tmp_path: Path, session: dict) -> None:
    key = session["table"]
    answers = write_answers(tmp_path / "R1.csv", key, "R1", _prefer_on_subject(set()))
    assert _analyze(tmp_path, session["key"], answers) == 0
    table = pd.read_csv(tmp_path / "out" / "r.csv")
    assert set(table["analysis"]) == {"preference", "likert", "likert_paired", "consistency"}
    text = (tmp_path / "out" / "r.md").read_text()
    for words in ("Clopper-Pearson", "cluster bootstrap", "sign test", "Wilcoxon", "kappa"):
        assert words in text
    assert "## Agreement between readers\n\nNot measured" in text  # one reader
    assert (tmp_path / "out" / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.assign(session="s000000000000"), "but the key is of session"),
        (lambda t: t.assign(trial=t["trial"].where(t.index > 0, "tdeadbeef")), "not in the key"),
        (lambda t: t.assign(sharpness=t["sharpness"].where(t.index > 0, 7)), "column sharpness"),
        (lambda t: t.assign(chosen=1), "has not one choice"),
        (lambda t: t.assign(sequence="x"), "sequence differs from the key's"),
        (lambda t: t.drop(columns=["chosen"]), "missing"),
    ],
)
def test_bad_answers_are_refused_naming_the_file(
    tmp_path: Path, session: dict, capsys: pytest.CaptureFixture, edit, message: str
) -> None:
    answers = write_answers(tmp_path / "R1.csv", session["table"], "R1", _prefer_on_subject(set()))
    edit(pd.read_csv(answers)).to_csv(answers, index=False)
    assert _analyze(tmp_path, session["key"], answers) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {answers}: ") and message in error
    assert error.count("\n") == 1 and not (tmp_path / "out").exists()


def test_one_reader_in_two_files_is_refused(
    tmp_path: Path, session: dict, capsys: pytest.CaptureFixture
) -> None:
    script = _prefer_on_subject(set())
    a = write_answers(tmp_path / "a.csv", session["table"], "R1", script)
    b = write_answers(tmp_path / "b.csv", session["table"], "R1", script)
    assert _analyze(tmp_path, session["key"], a, b) == 2
    assert f"reader R1 answers in both {a} and {b}" in capsys.readouterr().err
