"""The progress of a training run as typed records: what ``last.pt`` carries and history.csv shows.

* :class:`EpochProgress`: the sums of the epoch in progress (training loss, loss terms, slices,
  seconds), carried over a restart.
* :class:`Validation`: one validation pass (slice means of the composite loss, each term, MSE, SSIM
  and PSNR).
* :class:`EpochRecord`: one finished epoch, a row of history.csv
  (:func:`ssimrecon.training.history.history_columns`).
* :class:`Best`: the best validation result so far (the epoch whose model is ``best.pt``).

``last.pt`` holds only tensors and primitives (``torch.load(weights_only=True)``), so each record
turns into and back from plain dicts (``to_state``/``from_state``, ``to_row``/``from_row``) whose
keys are those of state version 2 (:data:`ssimrecon.training.checkpointer.STATE_VERSION`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "EpochProgress",
    "Validation",
    "EpochRecord",
    "Best",
    "balance_columns",
    "balance_reference",
]


def balance_reference(terms: Sequence[str]) -> str:
    """The term the others are compared with: ``mse`` when the loss has it, else its first."""
    return "mse" if "mse" in terms else terms[0]


def balance_columns(terms: Sequence[str]) -> tuple[str, ...]:
    """The loss-balance columns of a loss with ``terms``: for each term t other than the
    :func:`balance_reference` f, ``val_<t>_over_<f>_value`` (weighted t / weighted f, slice means)
    and ``val_<t>_over_<f>_grad`` (norm of the gradient of weighted t / of weighted f w.r.t. the
    network output, over the validation slices); none for a one-term loss."""
    if len(terms) < 2:
        return ()
    ref = balance_reference(terms)
    others = [t for t in terms if t != ref]
    return tuple(f"val_{t}_over_{ref}_{kind}" for t in others for kind in ("value", "grad"))


@dataclasses.dataclass
class EpochProgress:
    """Sums of the epoch in progress: composite training loss x slices (``loss_sum``), each loss
    term x slices in the loss's order (``term_sums``), training ``slices`` seen, and the seconds
    spent training (``train_seconds``) and in all (``epoch_seconds``) before this process."""

    loss_sum: float
    term_sums: list[float]
    slices: int
    train_seconds: float
    epoch_seconds: float

    @classmethod
    def fresh(cls, n_terms: int) -> EpochProgress:
        """Nothing done yet for a loss of ``n_terms`` terms."""
        return cls(0.0, [0.0] * n_terms, 0, 0.0, 0.0)

    def set_sums(self, loss_sum: float, term_sums: Sequence[float], slices: int) -> None:
        """Replace the loss sums and slices (the totals over every rank)."""
        self.loss_sum, self.term_sums, self.slices = loss_sum, list(term_sums), slices

    def add_seconds(self, train: float, total: float) -> None:
        """Add ``train`` seconds of training and ``total`` seconds in all."""
        self.train_seconds += train
        self.epoch_seconds += total

    def to_state(self) -> dict[str, Any]:
        """The ``accumulators`` entry of ``last.pt``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> EpochProgress:
        """Inverse of :meth:`to_state`."""
        return cls(
            float(state["loss_sum"]),
            [float(v) for v in state["term_sums"]],
            int(state["slices"]),
            float(state["train_seconds"]),
            float(state["epoch_seconds"]),
        )


@dataclasses.dataclass(frozen=True)
class Validation:
    """Slice means over the validation slices: composite ``loss``, each unweighted term (``terms``,
    in the loss's order), per-image ``mse``, ``ssim`` and ``psnr`` (dB), and ``balance`` (the
    :func:`balance_columns`: how the weighted terms compare, in value and gradient norm)."""

    loss: float
    terms: dict[str, float]
    mse: float
    ssim: float
    psnr: float
    balance: dict[str, float] = dataclasses.field(default_factory=dict)

    def columns(self) -> dict[str, float]:
        """The history.csv columns ``val_loss``, ``val_<term>``, ``val_mse``, ``val_ssim``,
        ``val_psnr`` (``val_mse`` is the per-image MSE, also when mse is a term)."""
        return {
            "val_loss": self.loss,
            **{f"val_{t}": v for t, v in self.terms.items()},
            "val_mse": self.mse,
            "val_ssim": self.ssim,
            "val_psnr": self.psnr,
            **self.balance,
        }

    @classmethod
    def from_columns(cls, row: Mapping[str, Any], terms: Sequence[str]) -> Validation:
        """Inverse of :meth:`columns` for a loss of ``terms``."""
        mse, ssim, psnr = (row[f"val_{metric}"] for metric in ("mse", "ssim", "psnr"))
        # a state saved before the balance was recorded has none (NaN)
        balance = {c: float(row.get(c, math.nan)) for c in balance_columns(terms)}
        return cls(row["val_loss"], {t: row[f"val_{t}"] for t in terms}, mse, ssim, psnr, balance)


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """One finished epoch (``epoch`` 1-based): mean composite ``train_loss`` and ``train_terms``
    over its training slices, its :class:`Validation`, ``seconds`` of wall time (over restarts),
    training ``slices_per_s`` and the learning rate ``lr``."""

    epoch: int
    train_loss: float
    train_terms: dict[str, float]
    validation: Validation
    seconds: float
    slices_per_s: float
    lr: float

    def to_row(self) -> dict[str, Any]:
        """The history.csv row (and ``last.pt``'s ``history`` entry)."""
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            **{f"train_{t}": v for t, v in self.train_terms.items()},
            **self.validation.columns(),
            "seconds": self.seconds,
            "slices_per_s": self.slices_per_s,
            "lr": self.lr,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any], terms: Sequence[str]) -> EpochRecord:
        """Inverse of :meth:`to_row` for a loss of ``terms``."""
        train_terms = {t: row[f"train_{t}"] for t in terms}
        validation = Validation.from_columns(row, terms)
        timing = (row["seconds"], row["slices_per_s"], row["lr"])
        return cls(row["epoch"], row["train_loss"], train_terms, validation, *timing)


@dataclasses.dataclass(frozen=True)
class Best:
    """The best validation result so far: its composite ``val_loss``, 1-based ``epoch`` (None
    before one finished with a finite loss), ``val_ssim`` and ``val_psnr``."""

    val_loss: float
    epoch: int | None
    val_ssim: float | None
    val_psnr: float | None

    @classmethod
    def none(cls) -> Best:
        """The best result of a run that has not finished an epoch."""
        return cls(math.inf, None, None, None)

    @classmethod
    def of(cls, epoch: int, validation: Validation) -> Best:
        """The result of ``validation`` at 1-based ``epoch``."""
        return cls(validation.loss, epoch, validation.ssim, validation.psnr)

    def improved_by(self, validation: Validation) -> bool:
        """True when ``validation``'s loss is finite and lower than this one."""
        return math.isfinite(validation.loss) and validation.loss < self.val_loss

    def scores(self) -> dict[str, float | None]:
        """``val_loss``, ``val_ssim``, ``val_psnr`` (what a model bundle's ``extra`` records)."""
        return {"val_loss": self.val_loss, "val_ssim": self.val_ssim, "val_psnr": self.val_psnr}

    def to_state(self) -> dict[str, Any]:
        """The ``best`` entry of ``last.pt``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Best:
        """Inverse of :meth:`to_state`."""
        return cls(state["val_loss"], state["epoch"], state["val_ssim"], state["val_psnr"])
