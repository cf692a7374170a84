"""Training loop: seeded, resumable, interruptible; best-by-validation-loss model bundle and
history.csv.

What one call of :func:`train_network` does (paper: Adam, lr 1e-4, 100 epochs, best validation
loss):

* ``torch.manual_seed(seed)`` before the U-Net is built; on CPU
  ``torch.use_deterministic_algorithms``
  (warn only), so CPU runs with equal settings give bit-identical weights.
* Each epoch visits the training slices in the order of
  :class:`~ssimrecon.training.dataset.EpochSampler`
  (a function of (seed, epoch) only); optional random crops are drawn in the main process from a
  generator seeded by (seed, epoch, batch).  Validation covers every validation slice that passes
  the
  ``min_signal_fraction`` rule, uncropped, in a fixed order: composite loss, mean SSIM, mean PSNR
  (per image, data_range = the volume's maximum).
* Whenever the validation loss improves, the model bundle is written to ``state_dir/best.pt`` and
  published to ``best_path`` (hard link or copy, then ``os.replace``), so Snakemake deleting the
  outputs
  of a failed job never loses it.
* ``state_dir/last.pt`` is written atomically at the end of every epoch and when SIGTERM/SIGUSR1
  arrives
  (at the next batch boundary, mid-epoch included: epoch, next batch, accumulators, RNG states).  It
  holds
  only tensors and primitives (``torch.load(weights_only=True)``) and a fingerprint of the
  model/loss/
  training settings and shards; a matching state is resumed (bit-identical to an uninterrupted run
  on
  CPU), a different one is moved aside to ``last.pt.stale``.  Interrupted runs raise
  :class:`TrainingInterrupted`; the CLI exits with 128 + signal number.
* history.csv (epoch, train_loss, val_loss, val_ssim, val_psnr, seconds, slices_per_s, lr) is
  rewritten
  atomically after every epoch; ``seconds`` is the epoch's wall time (training + validation),
  ``slices_per_s`` the training throughput.

The settings live in :mod:`ssimrecon.training.settings`, the on-disk state, outputs and stop signals
in
:mod:`ssimrecon.training.state`, the per-batch computation (model, batch, forward pass, throughput
probe) in
:mod:`ssimrecon.training.step`; this module re-exports their public names.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.losses import CompositeLoss, build_loss
from ssimrecon.functional.ssim import ssim
from ssimrecon.kspace.shards import ShardReader
from ssimrecon.nn.bundle import save_model_bundle
from ssimrecon.plain import to_plain
from ssimrecon.training.dataset import EpochSampler, SliceDataset, derive_seed, make_loader
from ssimrecon.training.fastpath import cli_preload
from ssimrecon.training.settings import (
    TRAIN_DEVICE_TYPES,
    TrainSettings,
    cpu_supports_bf16,
    resolve_bf16,
    resolve_device,
)
from ssimrecon.training.state import (
    HISTORY_COLUMNS,
    STATE_FORMAT,
    STATE_VERSION,
    STOP_SIGNALS,
    StopFlag,
    TrainingInterrupted,
    fingerprint,
    fresh_accumulators,
    fresh_best,
    load_state,
    move_stale,
    publish,
    save_state,
    set_rng_state,
    stop_signals,
    write_history,
)
from ssimrecon.training.step import (
    build_model,
    crop_batch,
    predict,
    prepare_batch,
    train_step_throughput,
)

log = logging.getLogger("ssimrecon.training.loop")

__all__ = [
    "TrainSettings",
    "TrainingInterrupted",
    "train_network",
    "train_step_throughput",
    "resolve_device",
    "resolve_bf16",
    "cpu_supports_bf16",
    "fingerprint",
    "build_model",
    "HISTORY_COLUMNS",
    "STATE_FORMAT",
    "STATE_VERSION",
    "STOP_SIGNALS",
    "TRAIN_DEVICE_TYPES",
    "main",
]


# -----------------------------------------------------------------------------------------------
# helpers
@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """torch.use_deterministic_algorithms(True, warn_only=True) for the duration, then restore."""
    if not enabled:
        yield
        return
    old, old_warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old, warn_only=old_warn)


@contextlib.contextmanager
def _cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """cuDNN autotuning for the fixed training shapes (CUDA only), then restore."""
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = old or enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def _plain_preprocessing(value: Any) -> dict:
    """Shard preprocessing attr (Preprocessing, JSON text or dict) -> plain dict (as evaluation
    compares it)."""
    if hasattr(value, "to_dict"):
        return dict(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (str, bytes)):
        return json.loads(value)
    return dict(value)


def _shard_metadata(path: Path) -> tuple[dict, Any, dict]:
    """(preprocessing dict, mask, mask_meta) of a shard, for the model bundle."""
    with ShardReader(path) as reader:
        attrs = dict(reader.attrs)
        preprocessing = _plain_preprocessing(reader.preprocessing)
        mask = reader.mask
    meta = {
        "seed": to_plain(attrs.get("mask_seed"), "mask_seed"),
        "acceleration": to_plain(attrs.get("acceleration"), "acceleration"),
    }
    return preprocessing, mask, meta


# -----------------------------------------------------------------------------------------------
# validation
@torch.no_grad()
def _validate(
    model: torch.nn.Module,
    loader: Any,
    mask: torch.Tensor,
    loss_fn: CompositeLoss,
    device: torch.device,
    bf16: bool,
    channels_last: bool,
    stop: StopFlag,
    desc: str,
) -> dict[str, float] | None:
    """Mean composite loss, SSIM and PSNR over the validation loader; None if a stop signal
    arrived."""
    model.eval()
    loss_sum, ssim_sum, psnr_sum, n = 0.0, 0.0, 0.0, 0
    for batch in tqdm(loader, desc=desc, leave=False, disable=None):
        if stop.signum is not None:
            return None
        x, target, data_range = prepare_batch(batch, device, mask)
        pred = predict(model, x, device, bf16, channels_last)
        total, _ = loss_fn(pred, target, data_range)
        b = target.shape[0]
        mse = ((pred - target) ** 2).mean(dim=(1, 2, 3))
        psnr = 10.0 * torch.log10(data_range**2 / mse)
        loss_sum += float(total) * b
        ssim_sum += float(ssim(pred, target, data_range, reduction="none").sum())
        psnr_sum += float(psnr.sum())
        n += b
    model.train()
    return {"val_loss": loss_sum / n, "val_ssim": ssim_sum / n, "val_psnr": psnr_sum / n}


# -----------------------------------------------------------------------------------------------
# training
def train_network(
    train_shards: Sequence[Path | str],
    val_shards: Sequence[Path | str],
    *,
    model_cfg: Mapping[str, Any],
    loss_terms: Mapping[str, float],
    settings: TrainSettings,
    best_path: Path | str,
    history_path: Path | str,
    state_dir: Path | str,
    network_name: str,
    on_batch_end: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train one network (see the module docstring); returns a summary dict.

    ``on_batch_end(epoch, batch)`` (0-based) is called after every optimiser step, before the stop
    check
    (progress hooks, tests).  Raises :class:`TrainingInterrupted` after saving the state on
    SIGTERM/SIGUSR1.
    """
    train_shards = [Path(p) for p in train_shards]
    val_shards = [Path(p) for p in val_shards]
    best_path, history_path, state_dir = Path(best_path), Path(history_path), Path(state_dir)
    for p in train_shards + val_shards:
        if not p.is_file():
            raise SsimreconError(f"{p}: shard does not exist")
    if not train_shards or not val_shards:
        raise SsimreconError("training needs at least one training and one validation shard")
    loss_fn = build_loss(loss_terms)
    device = resolve_device(settings.device)
    bf16 = resolve_bf16(settings.bf16, device)
    log.info(
        "%s: device: %s (CUDA_VISIBLE_DEVICES=%s, torch sees %d CUDA device(s)), bf16 autocast %s",
        network_name,
        device,
        os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"),
        torch.cuda.device_count(),
        "on" if bf16 else "off",
    )
    with _deterministic(device.type == "cpu"), _cudnn_benchmark(device.type == "cuda"):
        t_start = time.perf_counter()
        run = _setup(
            train_shards,
            val_shards,
            dict(model_cfg),
            dict(loss_terms),
            loss_fn,
            settings,
            device,
            bf16,
            best_path,
            history_path,
            state_dir,
            network_name,
            on_batch_end,
        )
        _resume_or_reset(run)
        _open_loaders(run, train_shards[0])
        with stop_signals(run.stop):
            for epoch in range(run.start_epoch, settings.epochs):
                _run_epoch(run, epoch)
        return _finish(run, t_start)


@dataclasses.dataclass(eq=False)
class _Run:
    """One training run: what :func:`_setup` builds, plus the progress that the state file carries.

    ``best``, ``history`` and ``acc`` (accumulators of the epoch in progress) change as the run
    goes;
    ``start_epoch``/``start_batch`` say where this process started (0, 0 or the resumed position).
    """

    network: str
    settings: TrainSettings
    device: torch.device
    bf16: bool
    loss_terms: dict
    loss_fn: CompositeLoss
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_set: SliceDataset
    val_set: SliceDataset
    sampler: EpochSampler
    n_batches: int
    fingerprint: str
    best_path: Path
    history_path: Path
    state_dir: Path
    on_batch_end: Callable[[int, int], None] | None
    best: dict[str, Any] = dataclasses.field(default_factory=fresh_best)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    acc: dict[str, Any] = dataclasses.field(default_factory=fresh_accumulators)
    start_epoch: int = 0
    start_batch: int = 0
    resumed_from: list[int] | None = None
    stop: StopFlag = dataclasses.field(default_factory=StopFlag)
    bundle_meta: tuple[dict, Any, dict] | None = (
        None  # (preprocessing, mask, mask_meta) for best.pt
    )
    train_loader: Any = None
    val_loader: Any = None
    train_mask: Any = (
        None  # the datasets' sampling masks on the device (network input from samples)
    )
    val_mask: Any = None

    @property
    def last_path(self) -> Path:
        """The resumable state, ``state_dir/last.pt``."""
        return self.state_dir / "last.pt"

    @property
    def state_best(self) -> Path:
        """The best model bundle inside the state directory, ``state_dir/best.pt``."""
        return self.state_dir / "best.pt"


def _setup(
    train_shards: list[Path],
    val_shards: list[Path],
    model_cfg: dict,
    loss_terms: dict,
    loss_fn: CompositeLoss,
    settings: TrainSettings,
    device: torch.device,
    bf16: bool,
    best_path: Path,
    history_path: Path,
    state_dir: Path,
    network: str,
    on_batch_end: Callable[[int, int], None] | None,
) -> _Run:
    """Index the slices, check the crop, then seed torch and build the model and the Adam optimiser.

    The order matters for reproducibility: ``torch.manual_seed`` directly precedes the U-Net's
    initialisation.
    """
    fp = fingerprint(model_cfg, loss_terms, settings, train_shards, val_shards)
    train_set = SliceDataset(train_shards, settings.min_signal_fraction)
    val_set = SliceDataset(val_shards, settings.min_signal_fraction)
    bs = settings.batch_size
    cap = None if settings.max_train_batches is None else settings.max_train_batches * bs
    sampler = EpochSampler(len(train_set), settings.seed, max_samples=cap)
    n_batches = math.ceil(sampler.epoch_length() / bs)
    if (
        settings.crop is not None
        and train_set.shape is not None
        and (settings.crop[0] > train_set.shape[0] or settings.crop[1] > train_set.shape[1])
    ):
        raise SsimreconError(
            f"training.crop: {list(settings.crop)} is larger than the images "
            f"{list(train_set.shape)}"
        )

    torch.manual_seed(settings.seed)
    model = build_model(model_cfg).to(device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = loss_fn.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    return _Run(
        network=network,
        settings=settings,
        device=device,
        bf16=bf16,
        loss_terms=loss_terms,
        loss_fn=loss_fn,
        model=model,
        optimizer=optimizer,
        train_set=train_set,
        val_set=val_set,
        sampler=sampler,
        n_batches=n_batches,
        fingerprint=fp,
        best_path=best_path,
        history_path=history_path,
        state_dir=state_dir,
        on_batch_end=on_batch_end,
    )


def _resume_or_reset(run: _Run) -> None:
    """Resume from ``last.pt`` if its fingerprint matches; otherwise move a foreign state aside.

    Resuming restores weights, optimiser, position, best result, history, accumulators and RNG
    states,
    re-publishes best.pt if the workflow output was deleted, and rewrites history.csv.
    """
    run.state_dir.mkdir(parents=True, exist_ok=True)
    last_path = run.last_path
    if not last_path.exists():
        return
    state = load_state(last_path)
    if state.get("fingerprint") != run.fingerprint:
        stale = move_stale(last_path, run.state_best)
        log.warning(
            "%s: training state of another configuration moved to %s; starting %s afresh",
            last_path,
            stale,
            run.network,
        )
        return
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.start_epoch, run.start_batch = int(state["epoch"]), int(state["next_batch"])
    run.best, run.history, run.acc = (
        dict(state["best"]),
        list(state["history"]),
        dict(state["accumulators"]),
    )
    set_rng_state(state["rng"], run.device)
    run.resumed_from = [run.start_epoch, run.start_batch]
    log.info(
        "resuming %s from epoch %d batch %d (%s)",
        run.network,
        run.start_epoch + 1,
        run.start_batch,
        last_path,
    )
    if run.best["epoch"] is not None and run.state_best.exists() and not run.best_path.exists():
        publish(run.state_best, run.best_path)
    write_history(run.history_path, run.history)


def _open_loaders(run: _Run, first_train_shard: Path) -> None:
    """Read the bundle metadata from the first training shard, create the loaders and log the
    plan."""
    run.bundle_meta = _shard_metadata(first_train_shard)
    settings, pin = run.settings, run.device.type == "cuda"
    run.train_mask, run.val_mask = (
        run.train_set.mask.to(run.device),
        run.val_set.mask.to(run.device),
    )
    run.train_loader = make_loader(
        run.train_set, settings.batch_size, run.sampler, settings.num_workers, pin
    )
    run.val_loader = make_loader(run.val_set, settings.batch_size, None, settings.num_workers, pin)
    log.info(
        "training %s on %s (bf16 %s, channels_last %s): %d of %d training slices, %d of %d "
        "validation slices, "
        "%d batches/epoch",
        run.network,
        run.device,
        run.bf16,
        settings.channels_last,
        len(run.train_set),
        run.train_set.num_total,
        len(run.val_set),
        run.val_set.num_total,
        run.n_batches,
    )


def _save_state(run: _Run, epoch: int, next_batch: int) -> None:
    """Write ``last.pt`` so that a rerun starts at (``epoch``, ``next_batch``)."""
    save_state(
        run.last_path,
        fingerprint=run.fingerprint,
        network=run.network,
        model=run.model,
        optimizer=run.optimizer,
        device=run.device,
        epoch=epoch,
        next_batch=next_batch,
        best=run.best,
        history=run.history,
        accumulators=run.acc,
    )


def _interrupt(run: _Run, epoch: int, next_batch: int) -> TrainingInterrupted:
    """Save the state at (``epoch``, ``next_batch``), log it and return the exception to raise."""
    _save_state(run, epoch, next_batch)
    exc = TrainingInterrupted(run.stop.signum or signal.SIGTERM, run.last_path, epoch, next_batch)
    log.warning(
        "%s: received %s; saved state to %s at epoch %d batch %d; rerun to resume",
        run.network,
        signal.Signals(exc.signum).name,
        run.last_path,
        epoch + 1,
        next_batch,
    )
    return exc


def _run_epoch(run: _Run, epoch: int) -> None:
    """One epoch: the training batches (from the resumed batch), validation, then
    :func:`_end_epoch`.

    Raises :class:`TrainingInterrupted` (state saved) when a stop signal arrives during it.
    """
    b0 = run.start_batch if epoch == run.start_epoch else 0
    if epoch != run.start_epoch:
        run.acc = fresh_accumulators()
    t0 = time.perf_counter()
    run.model.train()
    if b0 < run.n_batches:
        _train_batches(run, epoch, b0, t0)
    t_train = time.perf_counter() - t0
    metrics = _validate(
        run.model,
        run.val_loader,
        run.val_mask,
        run.loss_fn,
        run.device,
        run.bf16,
        run.settings.channels_last,
        run.stop,
        f"{run.network} val",
    )
    if metrics is None:  # signal during validation: training part of the epoch is done
        run.acc["train_seconds"] += t_train
        run.acc["epoch_seconds"] += time.perf_counter() - t0
        raise _interrupt(run, epoch, run.n_batches)
    _end_epoch(
        run,
        epoch,
        metrics,
        run.acc["train_seconds"] + t_train,
        run.acc["epoch_seconds"] + time.perf_counter() - t0,
    )


def _train_batches(run: _Run, epoch: int, b0: int, t0: float) -> None:
    """Optimiser steps over batches ``b0..`` of ``epoch``, adding to the accumulators ``run.acc``.

    The running loss sum stays on the device (no sync per batch) and continues in the same order on
    resume.
    On a stop signal the accumulators and times (since ``t0``) are saved with the state and
    :class:`TrainingInterrupted` is raised.
    """
    settings, device, acc = run.settings, run.device, run.acc
    run.sampler.set_epoch(epoch, skip=b0 * settings.batch_size)
    bar = tqdm(
        run.train_loader,
        total=run.n_batches,
        initial=b0,
        leave=False,
        disable=None,
        desc=f"{run.network} {epoch + 1}/{settings.epochs}",
    )
    loss_sum = torch.tensor(acc["loss_sum"], dtype=torch.float64, device=device)
    for b, batch in enumerate(bar, start=b0):
        x, target, data_range = prepare_batch(batch, device, run.train_mask)
        if settings.crop is not None:
            x, target = crop_batch(
                x, target, settings.crop, derive_seed("crop", settings.seed, epoch, b)
            )
        pred = predict(run.model, x, device, run.bf16, settings.channels_last)
        total, _ = run.loss_fn(pred, target, data_range)
        run.optimizer.zero_grad(set_to_none=True)
        total.backward()
        run.optimizer.step()
        loss_sum += total.detach().double() * target.shape[0]
        acc["slices"] += int(target.shape[0])
        if run.on_batch_end is not None:
            run.on_batch_end(epoch, b)
        if run.stop.signum is not None:
            acc["loss_sum"] = float(loss_sum)
            now = time.perf_counter()
            acc["train_seconds"] += now - t0
            acc["epoch_seconds"] += now - t0
            bar.close()
            raise _interrupt(run, epoch, b + 1)
    acc["loss_sum"] = float(loss_sum)


def _end_epoch(
    run: _Run, epoch: int, metrics: dict[str, float], train_seconds: float, seconds: float
) -> None:
    """Record a finished epoch: history row, best checkpoint, history.csv, ``last.pt``, log line.

    ``train_seconds``/``seconds``: the epoch's training and total wall time (over restarts).  A stop
    signal that arrived during the last validation batch interrupts here, at the start of the next
    epoch.
    """
    acc = run.acc
    row = {
        "epoch": epoch + 1,
        "train_loss": acc["loss_sum"] / max(acc["slices"], 1),
        **metrics,
        "seconds": round(seconds, 3),
        "slices_per_s": round(acc["slices"] / train_seconds, 2) if train_seconds > 0 else 0.0,
        "lr": run.optimizer.param_groups[0]["lr"],
    }
    run.history.append(row)
    if math.isfinite(metrics["val_loss"]) and metrics["val_loss"] < run.best["val_loss"]:
        _save_best(run, epoch, metrics)
    write_history(run.history_path, run.history)
    run.acc = fresh_accumulators()
    _save_state(run, epoch + 1, 0)
    log.info(
        "epoch %d/%d train_loss %.6g val_loss %.6g val_ssim %.4f val_psnr %.2f %.1fs %.1f "
        "slices/s%s",
        epoch + 1,
        run.settings.epochs,
        row["train_loss"],
        row["val_loss"],
        row["val_ssim"],
        row["val_psnr"],
        seconds,
        row["slices_per_s"],
        " *best*" if run.best["epoch"] == epoch + 1 else "",
    )
    if run.stop.signum is not None:
        raise _interrupt(run, epoch + 1, 0)


def _save_best(run: _Run, epoch: int, metrics: dict[str, float]) -> None:
    """New best validation loss: write the model bundle to ``state_dir/best.pt`` and publish it."""
    run.best = {
        "val_loss": metrics["val_loss"],
        "epoch": epoch + 1,
        "val_ssim": metrics["val_ssim"],
        "val_psnr": metrics["val_psnr"],
    }
    assert run.bundle_meta is not None
    preprocessing, mask, mask_meta = run.bundle_meta
    save_model_bundle(
        run.state_best,
        model=run.model,
        preprocessing=preprocessing,
        mask=mask,
        mask_meta=mask_meta,
        extra={
            "network": run.network,
            "epoch": epoch + 1,
            "val_loss": metrics["val_loss"],
            "val_ssim": metrics["val_ssim"],
            "val_psnr": metrics["val_psnr"],
            "loss_terms": run.loss_terms,
            "training": run.settings.to_dict(),
        },
    )
    publish(run.state_best, run.best_path)


def _finish(run: _Run, t_start: float) -> dict[str, Any]:
    """After the last epoch: make sure best.pt is published and history.csv written; the summary
    dict."""
    best = run.best
    if best["epoch"] is None or not run.state_best.exists():
        raise SsimreconError(
            f"{run.network}: no best checkpoint was written in {run.settings.epochs} epochs "
            f"(validation loss never finite; see {run.history_path})"
        )
    if not run.best_path.exists():
        publish(run.state_best, run.best_path)
    write_history(run.history_path, run.history)
    summary = {
        "network": run.network,
        "epochs": run.settings.epochs,
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "best_val_ssim": best["val_ssim"],
        "best_val_psnr": best["val_psnr"],
        "resumed_from": run.resumed_from,
        "device": str(run.device),
        "bf16": run.bf16,
        "channels_last": run.settings.channels_last,
        "train_slices": len(run.train_set),
        "val_slices": len(run.val_set),
        "seconds": time.perf_counter() - t_start,
        "best_path": str(run.best_path),
        "history_path": str(run.history_path),
        "state_path": str(run.last_path),
    }
    log.info(
        "finished %s: best epoch %s val_loss %.6g val_ssim %.4f -> %s",
        run.network,
        best["epoch"],
        best["val_loss"],
        best["val_ssim"],
        run.best_path,
    )
    return summary


# -----------------------------------------------------------------------------------------------
# CLI
def _json_arg(value: str, option: str) -> dict[str, Any]:
    """JSON text, or a path to a JSON file, -> dict; errors name the option."""
    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value)
        if not path.is_file():
            raise SsimreconError(f"{option}: neither a JSON object nor an existing file: {value!r}")
        text = path.read_text()
    try:
        out = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SsimreconError(f"{option}: invalid JSON ({exc})") from None
    if not isinstance(out, dict):
        raise SsimreconError(f"{option}: expected a JSON object, got {type(out).__name__}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``ssimrecon train``: train one network; exit 128+signum when stopped by SIGTERM/SIGUSR1."""
    cli_preload("train")  # re-exec with tcmalloc (same pid) when started as `ssimrecon train`
    parser = argparse.ArgumentParser(prog="ssimrecon train", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--network", required=True, help="network name (used in logs and the bundle)"
    )
    parser.add_argument("--train-shards", nargs="+", required=True, type=Path)
    parser.add_argument("--val-shards", nargs="+", required=True, type=Path)
    parser.add_argument("--model-json", required=True, help="model settings: JSON object or file")
    parser.add_argument(
        "--loss-json", required=True, help="loss terms {term: weight}: JSON object or file"
    )
    parser.add_argument(
        "--training-json", default="{}", help="training settings: JSON object or file"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--best", required=True, type=Path, help="best model bundle (.pt)")
    parser.add_argument("--history", required=True, type=Path, help="history.csv")
    parser.add_argument(
        "--state-dir", required=True, type=Path, help="resumable state (last.pt, best.pt)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            raise SsimreconError(f"--threads: must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    settings = TrainSettings.from_dict(_json_arg(args.training_json, "--training-json"))
    try:
        summary = train_network(
            args.train_shards,
            args.val_shards,
            model_cfg=_json_arg(args.model_json, "--model-json"),
            loss_terms=_json_arg(args.loss_json, "--loss-json"),
            settings=settings,
            best_path=args.best,
            history_path=args.history,
            state_dir=args.state_dir,
            network_name=args.network,
        )
    except TrainingInterrupted as exc:
        return exc.exit_code
    log.info("summary %s", json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
