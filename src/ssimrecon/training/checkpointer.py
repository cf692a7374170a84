"""What a training run keeps on disk: :class:`Checkpointer` owns the run's files.

* ``state_dir/last.pt``: the resumable state (:meth:`Checkpointer.save`,
  :meth:`Checkpointer.resume`).  It holds only tensors and primitives, so it loads with
  ``torch.load(weights_only=True)``: format tag and version, the :func:`fingerprint` of
  everything that changes the result, model and optimiser state, the position (``epoch``,
  ``next_batch``: where a resumed run starts), the
  :class:`~ssimrecon.training.records.Best` validation result so far, the history rows
  (:class:`~ssimrecon.training.records.EpochRecord`), the RNG states (:func:`rng_state`) and the
  :class:`~ssimrecon.training.records.EpochProgress` of the epoch in progress.
* ``state_dir/last.prev.pt``: the state before the newest one, the fallback when ``last.pt`` cannot
  be read (a file that cannot is moved aside as ``.unreadable``).  A state of another configuration
  (another fingerprint) is moved aside as ``.stale`` with its best.pt.
* ``state_dir/best.pt``: the best model bundle (:meth:`Checkpointer.save_best`), published to the
  workflow's output ``best_path`` (link or copy + ``os.replace``: Snakemake deleting a failed job's
  outputs never loses it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssimrecon.atomic import atomic_output
from ssimrecon.config.stages import TrainSettings
from ssimrecon.errors import CheckpointError
from ssimrecon.nn.bundle import BundleMetadata, load_tagged, save_model_bundle
from ssimrecon.nn.unet import UNet
from ssimrecon.plain import to_plain
from ssimrecon.training.records import Best, EpochProgress, EpochRecord

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "fingerprint",
    "rng_state",
    "set_rng_state",
    "load_state",
    "publish",
    "Resumed",
    "Checkpointer",
]

log = logging.getLogger("ssimrecon.training.checkpointer")

STATE_FORMAT = "ssimrecon-train-state"
#: 2: accumulators and history rows carry the loss terms (version 1 states are refused).
STATE_VERSION = 2


def fingerprint(
    model_cfg: Mapping[str, Any],
    loss_terms: Mapping[str, float],
    settings: TrainSettings,
    train_shards: Sequence[Path],
    val_shards: Sequence[Path],
    mask: np.ndarray,
) -> str:
    """SHA-256 of everything that changes the result (num_workers, gpus, compile and
    instance_norm do not: a run may resume on another number of GPUs; shards by path and
    size; the undersampling mask (H, W) by its samples, since shards hold none)."""

    def shard_ids(paths: Sequence[Path]) -> list[list[Any]]:
        return [[os.path.abspath(p), os.path.getsize(p)] for p in paths]

    settings_d = settings.to_dict()
    for speed_only in ("num_workers", "gpus", "compile", "instance_norm"):
        settings_d.pop(speed_only)
    blob = json.dumps(
        {
            "model": dict(model_cfg),
            "loss": dict(loss_terms),
            "training": settings_d,
            "train": shard_ids(train_shards),
            "val": shard_ids(val_shards),
            "mask": hashlib.sha256(np.packbits(np.asarray(mask, dtype=bool))).hexdigest(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch's CPU RNG state, and on CUDA every device's RNG state (as CPU tensors)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only when training on CUDA)."""
    torch.set_rng_state(state["torch"].to(torch.uint8))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in state["cuda"]])


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by :meth:`Checkpointer.save` (weights_only); other files raise
    :class:`~ssimrecon.errors.CheckpointError`."""
    return load_tagged(path, STATE_FORMAT, STATE_VERSION, "training state")


def publish(src: Path, dst: Path) -> None:
    """Make ``dst`` an atomic copy of ``src`` (hard link when possible)."""
    with atomic_output(dst) as tmp:
        tmp.unlink()  # os.link needs a free name
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _move_unreadable(path: Path) -> Path:
    """Move a state file that cannot be loaded aside to ``<name>.unreadable[.N]`` (kept for
    inspection, never loaded again); returns the new path."""
    target = path.with_name(path.name + ".unreadable")
    n = 1
    while target.exists():
        target, n = path.with_name(f"{path.name}.unreadable.{n}"), n + 1
    os.replace(path, target)
    return target


@dataclasses.dataclass(frozen=True)
class Resumed:
    """The state a run resumes from: weights and optimiser state, the 0-based position
    (``epoch``, ``next_batch``), its progress records, RNG states and the signal that stopped the
    previous attempt (None if it was not stopped by one)."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    epoch: int
    next_batch: int
    best: Best
    history: list[EpochRecord]
    progress: EpochProgress
    rng: dict[str, Any]
    stopped_by: str | None


class Checkpointer:
    """The files of one run of ``network`` (loss ``terms`` in the loss's order): ``last.pt``,
    ``last.prev.pt`` and ``best.pt`` in ``state_dir``, and ``best_path``, the published best.pt.

    ``fingerprint`` (:func:`fingerprint`) names the configuration: a state with another one is
    never resumed.  With several processes only rank 0 calls the writing methods.
    """

    def __init__(
        self,
        state_dir: Path,
        best_path: Path,
        *,
        fingerprint: str,
        network: str,
        terms: Sequence[str],
    ) -> None:
        self.state_dir, self.best_path = Path(state_dir), Path(best_path)
        self.fingerprint, self.network, self.terms = fingerprint, network, tuple(terms)

    @property
    def last_path(self) -> Path:
        """The resumable state, ``state_dir/last.pt``."""
        return self.state_dir / "last.pt"

    @property
    def previous_path(self) -> Path:
        """The state before the newest one, ``state_dir/last.prev.pt``."""
        return self.state_dir / "last.prev.pt"

    @property
    def state_best(self) -> Path:
        """The best model bundle inside the state directory, ``state_dir/best.pt``."""
        return self.state_dir / "best.pt"

    def resume(self) -> Resumed | None:
        """The newest readable state of this configuration, or None (start afresh).

        ``last.pt``, else ``last.prev.pt`` (which then becomes ``last.pt``); a file that does not
        load (truncated, of an older format, not plain tensors) is moved aside as
        ``.unreadable`` with a warning.  A state of another fingerprint is moved aside as
        ``last.pt.stale`` (with ``last.prev.pt`` and best.pt) with a warning.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = self._readable()
        if state is None:
            return None
        if state.get("fingerprint") != self.fingerprint:
            stale = self._move_stale()
            log.warning(
                "%s: training state of another configuration moved to %s; starting %s afresh",
                self.last_path,
                stale,
                self.network,
            )
            return None
        return Resumed(
            model=state["model"],
            optimizer=state["optimizer"],
            epoch=int(state["epoch"]),
            next_batch=int(state["next_batch"]),
            best=Best.from_state(state["best"]),
            history=[EpochRecord.from_row(row, self.terms) for row in state["history"]],
            progress=EpochProgress.from_state(state["accumulators"]),
            rng=state["rng"],
            stopped_by=state.get("stopped_by"),
        )

    def _readable(self) -> dict[str, Any] | None:
        """The newest state file that loads (see :meth:`resume`), as stored."""
        for path in (self.last_path, self.previous_path):
            if not path.exists():
                continue
            try:
                state = load_state(path)
            except CheckpointError as exc:
                aside = _move_unreadable(path)
                log.warning("%s; moved it to %s", exc, aside)
                continue
            if path != self.last_path:
                os.replace(path, self.last_path)
                log.warning("resuming %s from the previous state %s", self.network, path)
            return state
        return None

    def _move_stale(self) -> Path:
        """Move a state of another configuration (and its best.pt) aside to ``*.stale``; returns
        the new path of ``last.pt``."""
        stale = self.last_path.with_name("last.pt.stale")
        os.replace(self.last_path, stale)
        if self.previous_path.exists():
            os.replace(self.previous_path, self.previous_path.with_name("last.prev.pt.stale"))
        if self.state_best.exists():
            os.replace(self.state_best, self.state_best.with_name("best.pt.stale"))
        return stale

    def save(
        self,
        *,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        epoch: int,
        next_batch: int,
        best: Best,
        history: Sequence[EpochRecord],
        progress: EpochProgress,
        stopped_by: str | None = None,
    ) -> None:
        """Write ``last.pt`` atomically; a resumed run starts at (``epoch``, ``next_batch``),
        0-based. ``stopped_by``: the signal name (e.g. ``"SIGUSR1"``) when the run stopped on one,
        so that the attempt which resumes can say why the previous one ended (a job's log is
        replaced by the retry's). The state it replaces is kept as ``last.prev.pt``."""
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint,
            "network": self.network,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": to_plain(optimizer.state_dict(), "optimizer"),
            "epoch": epoch,
            "next_batch": next_batch,
            "best": best.to_state(),
            "history": [record.to_row() for record in history],
            "rng": rng_state(device),
            "accumulators": progress.to_state(),
            "stopped_by": stopped_by,
        }
        with atomic_output(self.last_path) as tmp:
            with open(tmp, "wb") as fh:
                torch.save(state, fh)
            if self.last_path.exists():  # a kill between here and the rename leaves last.prev.pt
                os.replace(self.last_path, self.previous_path)

    def save_best(
        self,
        model: UNet,
        metadata: BundleMetadata,
        extra: Mapping[str, Any],
        data_consistency: bool = False,
    ) -> None:
        """Write the model bundle of a new best validation loss to ``state_dir/best.pt`` and
        publish it to ``best_path`` (``data_consistency``: ``model.data_consistency``)."""
        save_model_bundle(
            self.state_best,
            model=model,
            preprocessing=metadata.preprocessing,
            mask=metadata.mask,
            mask_meta=metadata.mask_meta,
            grid=metadata.grid,
            extra=dict(extra),
            data_consistency=data_consistency,
        )
        publish(self.state_best, self.best_path)

    def has_best(self) -> bool:
        """True when ``state_dir/best.pt`` exists."""
        return self.state_best.exists()

    def restore_best(self) -> None:
        """Publish ``state_dir/best.pt`` again if the workflow output ``best_path`` is gone."""
        if self.state_best.exists() and not self.best_path.exists():
            publish(self.state_best, self.best_path)
