"""reader_study.methods resolved against the workflow's runs, errors naming the key."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ssimrecon.errors import ConfigError
from ssimrecon.reader_study.settings import resolve_methods, settings_values

RUNS = {
    "Net-mse": SimpleNamespace(acceleration=4),
    "Net-mse-dssim": SimpleNamespace(acceleration=4),
}


def test_null_methods_are_every_network_and_zero_filled_may_be_named() -> None:
    assert resolve_methods({"methods": None}, RUNS, study=False) == ["Net-mse", "Net-mse-dssim"]
    named = resolve_methods({"methods": ["zero-filled", "Net-mse"]}, RUNS, study=False)
    assert named == ["zero-filled", "Net-mse"]
    values = settings_values({"enabled": True, "methods": None, "trials": 3}, named, 0.05)
    assert values == {"methods": named, "trials": 3, "min_signal_fraction": 0.05}


@pytest.mark.parametrize(
    ("methods", "runs", "study", "message"),
    [
        (None, RUNS, True, "a study has many runs"),
        (["Net-mse", "Net-x"], RUNS, False, "'Net-x' is neither a run"),
        (None, {"Net-mse": RUNS["Net-mse"]}, False, "at least two methods"),
        (
            ["Net-mse", "Net-mse_R8"],
            {**RUNS, "Net-mse_R8": SimpleNamespace(acceleration=8)},
            False,
            "share one acceleration",
        ),
    ],
)
def test_methods_that_cannot_be_shown_are_refused(methods, runs, study, message) -> None:
    with pytest.raises(ConfigError, match=rf"^reader_study\.methods: .*{message}"):
        resolve_methods({"methods": methods}, runs, study=study)
