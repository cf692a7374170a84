"""progress: a tqdm bar on a terminal, log lines with amount, rate and ETA in a job's log file."""

from __future__ import annotations

import logging

import pytest

from ssimrecon.progress import LogProgress, progress, track


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_report_amount_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger="ssimrecon.progress")
    bar = LogProgress(4_000_000_000, "download IXI-T1.tar.part", "B", interval=30, clock=clock)
    clock.now = 10.0
    bar.update(500_000_000)  # before the interval: no line
    assert caplog.messages == []
    clock.now = 40.0
    bar.update(1_500_000_000)  # 2 GB in 40 s = 50 MB/s, 2 GB left = 40 s
    assert caplog.messages == [
        "download IXI-T1.tar.part: 2.00 GB of 4.00 GB (50%), 50.00 MB/s, ETA 0:00:40"
    ]
    clock.now = 80.0
    bar.update(2_000_000_000)
    bar.close()
    bar.close()  # closing twice logs once
    assert caplog.messages[-1] == (
        "download IXI-T1.tar.part: 4.00 GB of 4.00 GB (100%), 50.00 MB/s, ETA 0:00:00"
    )
    assert len(caplog.messages) == 3


def test_resumed_rate_counts_only_new_bytes_and_unknown_total() -> None:
    clock = FakeClock()
    bar = LogProgress(None, "train Net-mse", "slices", initial=100, clock=clock)
    clock.now = 4.0
    bar.update(20)
    assert bar.line() == "train Net-mse: 120 slices, 5 slices/s, elapsed 0:00:04"


def test_counts_name_their_unit_once_in_the_plural() -> None:
    clock = FakeClock()
    bar = LogProgress(18, "qc", "subject", clock=clock)
    clock.now = 2.0
    bar.update(1)
    assert bar.line() == "qc: 1 of 18 subjects (6%), 0 subjects/s, ETA 0:00:34"
    bar.update(17)
    assert bar.line().startswith("qc: 18 of 18 subjects (100%), 9 subjects/s")


def test_not_a_terminal_gives_log_progress_and_track_counts_items(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under pytest (and in a Snakemake job) stderr is not a terminal."""
    monkeypatch.setenv("SSIMRECON_PROGRESS_SECONDS", "0")
    caplog.set_level(logging.INFO, logger="ssimrecon.progress")
    assert isinstance(progress(10, "x", "files"), LogProgress)
    assert list(track(["a", "b", "c"], "qc", "volumes")) == ["a", "b", "c"]
    assert caplog.messages[-1].startswith("qc: 3 of 3 volumes (100%)")
    assert len(caplog.messages) == 4  # one per item (interval 0) and one at the end
