"""What a training run keeps on disk.

* ``state_dir/last.pt``: the resumable state (:func:`save_state` / :func:`load_state`).  It holds
  only tensors and primitives, so it loads with ``torch.load(weights_only=True)``: format tag and
  version, the :func:`fingerprint` of everything that changes the result, model and optimiser state,
  the position (``epoch``, ``next_batch``: where a resumed run starts), the best validation result
  so far, the history rows, the RNG states (:func:`rng_state`) and the accumulators of the epoch in
  progress (:func:`fresh_accumulators`).  A state of another configuration is moved aside by
  :func:`move_stale`.
* ``state_dir/best.pt``: the best model bundle, published to the workflow's output by
  :func:`publish`.
"""

from __future__ import annotations

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
from ssimrecon.nn.bundle import load_tagged
from ssimrecon.plain import to_plain

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "fingerprint",
    "fresh_accumulators",
    "fresh_best",
    "rng_state",
    "set_rng_state",
    "save_state",
    "load_state",
    "readable_state",
    "move_stale",
    "publish",
]

log = logging.getLogger("ssimrecon.training.checkpointer")

STATE_FORMAT = "ssimrecon-train-state"
#: 2: accumulators and history rows carry the loss terms (version 1 states are refused).
STATE_VERSION = 2


# -----------------------------------------------------------------------------------------------
# identity
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


# -----------------------------------------------------------------------------------------------
# last.pt
def fresh_accumulators(terms: Sequence[str]) -> dict[str, Any]:
    """Accumulators of an epoch in progress: training loss sum, per-term sums (in ``terms``' order)
    and slices, seconds spent so far."""
    return {
        "loss_sum": 0.0,
        "term_sums": [0.0] * len(terms),
        "slices": 0,
        "train_seconds": 0.0,
        "epoch_seconds": 0.0,
    }


def fresh_best() -> dict[str, Any]:
    """The best validation result of a run that has not finished an epoch."""
    return {"val_loss": float("inf"), "epoch": None, "val_ssim": None, "val_psnr": None}


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


def save_state(
    path: Path,
    *,
    fingerprint: str,
    network: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epoch: int,
    next_batch: int,
    best: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    accumulators: Mapping[str, Any],
    stopped_by: str | None = None,
) -> None:
    """Write the resumable state atomically; a resumed run starts at (``epoch``, ``next_batch``),
    0-based. ``stopped_by``: the signal name (e.g. ``"SIGUSR1"``) when the run stopped on one, so
    that the attempt which resumes can say why the previous one ended (a job's log is replaced by
    the retry's). The state it replaces is kept as ``last.prev.pt`` (:func:`previous_path`), the
    fallback when ``last.pt`` cannot be read."""
    state = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "fingerprint": fingerprint,
        "network": network,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": to_plain(optimizer.state_dict(), "optimizer"),
        "epoch": epoch,
        "next_batch": next_batch,
        "best": dict(best),
        "history": [dict(r) for r in history],
        "rng": rng_state(device),
        "accumulators": dict(accumulators),
        "stopped_by": stopped_by,
    }
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
        if path.exists():  # a kill between here and the rename leaves last.prev.pt (resumable)
            os.replace(path, previous_path(path))


def previous_path(last_path: Path) -> Path:
    """Where :func:`save_state` keeps the state before the newest one: ``last.prev.pt``."""
    return last_path.with_name(last_path.stem + ".prev" + last_path.suffix)


def move_unreadable(path: Path) -> Path:
    """Move a state file that cannot be loaded aside to ``<name>.unreadable[.N]`` (kept for
    inspection, never loaded again); returns the new path."""
    target = path.with_name(path.name + ".unreadable")
    n = 1
    while target.exists():
        target, n = path.with_name(f"{path.name}.unreadable.{n}"), n + 1
    os.replace(path, target)
    return target


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state` (weights_only); other files raise
    :class:`~ssimrecon.errors.CheckpointError`."""
    return load_tagged(path, STATE_FORMAT, STATE_VERSION, "training state")


def move_stale(last_path: Path, state_best: Path) -> Path:
    """Move a state of another configuration (and its best.pt) aside to ``*.stale``; returns the new
    last path."""
    stale = last_path.with_name("last.pt.stale")
    os.replace(last_path, stale)
    previous = previous_path(last_path)
    if previous.exists():
        os.replace(previous, previous.with_name(previous.name + ".stale"))
    if state_best.exists():
        os.replace(state_best, state_best.with_name("best.pt.stale"))
    return stale


# -----------------------------------------------------------------------------------------------
# outputs
def publish(src: Path, dst: Path) -> None:
    """Make ``dst`` an atomic copy of ``src`` (hard link when possible)."""
    with atomic_output(dst) as tmp:
        tmp.unlink()  # os.link needs a free name
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def readable_state(last_path: Path, network: str) -> dict[str, Any] | None:
    """The newest state that loads: ``last_path``, else its :func:`previous_path`; a file that
    does not load (truncated, of an older format, not plain tensors) is moved aside with a warning,
    never loaded again. None when there is none (start afresh)."""
    for path in (last_path, previous_path(last_path)):
        if not path.exists():
            continue
        try:
            state = load_state(path)
        except CheckpointError as exc:
            aside = move_unreadable(path)
            log.warning("%s; moved it to %s", exc, aside)
            continue
        if path != last_path:
            os.replace(path, last_path)
            log.warning("resuming %s from the previous state %s", network, path)
        return state
    return None
