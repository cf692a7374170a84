"""How a training run stops on a signal: SIGTERM/SIGUSR1 (:data:`STOP_SIGNALS`) only set a
:class:`StopFlag` (:func:`stop_signals`); the loop saves its state at the next batch boundary and
raises :class:`TrainingInterrupted` (exit code 128 + signal number)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["STOP_SIGNALS", "TrainingInterrupted", "StopFlag", "stop_signals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving its state; ``exit_code`` is 128 + signal number."""

    def __init__(self, signum: int, state_path: Path, epoch: int, batch: int) -> None:
        self.signum, self.state_path, self.epoch, self.batch = signum, state_path, epoch, batch
        self.exit_code = 128 + signum
        super().__init__(
            f"{signal.Signals(signum).name}: state saved to {state_path} (epoch {epoch + 1} batch "
            f"{batch})"
        )


class StopFlag:
    """Signal handler that only records the signal; the loop acts on it at a batch boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum


@contextlib.contextmanager
def stop_signals(flag: StopFlag) -> Iterator[None]:
    """Install ``flag`` for SIGTERM/SIGUSR1 (main thread only) and restore the old handlers
    afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, flag) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
