"""Training loop: seeded, resumable, interruptible; best-by-validation-loss model bundle and
history.csv.  :class:`Trainer` is the run: build it, then call :meth:`Trainer.fit`.

* Paper: Adam, lr 1e-4 (``training.lr_schedule: constant``; ``cosine`` and ``onecycle`` set every
  step's rate, :mod:`ssimrecon.training.schedule`), 100 epochs, best validation loss.
  ``torch.manual_seed(seed)`` precedes the U-Net's initialisation and CPU runs use
  ``torch.use_deterministic_algorithms`` (warn only), so CPU runs with equal settings give
  bit-identical weights.
* Training slices come in the order of :class:`~ssimrecon.training.dataset.EpochSampler` (a function
  of (seed, epoch) only); random crops use a generator seeded by (seed, epoch, batch). Validation
  covers every validation slice passing ``min_signal_fraction``, uncropped, in a fixed order:
  composite loss, each loss term, mean MSE, SSIM and PSNR (per image, data_range: volume maximum).
* The run's files belong to its :class:`~ssimrecon.training.checkpointer.Checkpointer`: a better
  validation loss writes ``state_dir/best.pt`` and publishes it to ``best_path``;
  ``state_dir/last.pt`` is written after every epoch and when SIGTERM/SIGUSR1 arrives
  (:mod:`ssimrecon.training.signals`; at the next batch boundary, mid-epoch included).  A state
  with the same fingerprint (settings, shards and mask) is resumed (bit-identical on CPU), another
  is moved aside to ``last.pt.stale``. Interrupted runs raise ``TrainingInterrupted`` (exit code
  128 + signal).
* The run's progress is typed (:mod:`ssimrecon.training.records`): ``best`` (:class:`Best`),
  ``history`` (:class:`EpochRecord` per finished epoch) and ``progress`` (:class:`EpochProgress`
  of the epoch in progress).
* ``training.gpus`` > 1: one process per GPU under torchrun, DistributedDataParallel, each rank a
  share of every global batch (:mod:`ssimrecon.training.distributed`); rank 0 writes the files.
* history.csv (rewritten every epoch; :func:`~ssimrecon.training.history.history_columns`):
  composite losses, each unweighted term (slice means), ``seconds`` (epoch wall time),
  ``slices_per_s``.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ssimrecon.config.stages import TrainSettings
from ssimrecon.errors import SsimreconError
from ssimrecon.functional.losses import build_loss
from ssimrecon.nn.bundle import bundle_metadata
from ssimrecon.nn.reconstructor import Physics, Reconstructor, input_magnitude
from ssimrecon.progress import progress as progress_bar
from ssimrecon.progress import track
from ssimrecon.training import distributed
from ssimrecon.training.bf16 import resolve_bf16
from ssimrecon.training.board import TrainingBoard
from ssimrecon.training.checkpointer import Checkpointer, fingerprint, set_rng_state
from ssimrecon.training.dataset import EpochSampler, SliceDataset, derive_seed, make_loader
from ssimrecon.training.history import write_history
from ssimrecon.training.records import Best, EpochProgress, EpochRecord, Validation
from ssimrecon.training.schedule import learning_rate
from ssimrecon.training.signals import StopFlag, TrainingInterrupted, stop_signals
from ssimrecon.training.step import (
    BatchPhysics,
    compiled,
    crop_batch,
    cuda_fast_math,
    deterministic_algorithms,
    make_optimizer,
    measured_kspace,
    predict,
    prepare_batch,
    train_step,
    training_model,
)
from ssimrecon.training.validation import validate

log = logging.getLogger("ssimrecon.training.loop")


class Trainer:
    """One training run of one network, resumable from ``state_dir/last.pt``.

    Building it indexes the shards, seeds torch, builds the U-Net and its Adam optimiser
    (``torch.manual_seed`` directly precedes the U-Net's initialisation) and checks the crop
    against the U-Net and the shards' slices (:meth:`TrainSettings.check_crop`).  :meth:`fit`
    resumes or resets the state, then runs the epochs; each epoch is :meth:`train_epoch`,
    :meth:`validate` and :meth:`end_epoch` (history row, best checkpoint, history.csv, last.pt). The
    progress that ``last.pt`` carries is ``best``, ``history`` and ``progress`` (typed records,
    :mod:`ssimrecon.training.records`); ``start_epoch``/``start_batch`` say where this process
    started; ``checkpointer`` writes and reads the files.
    """

    def __init__(
        self,
        train_shards: Sequence[Path | str],
        val_shards: Sequence[Path | str],
        *,
        mask_path: Path | str,
        model_cfg: Mapping[str, Any],
        loss_terms: Mapping[str, float],
        settings: TrainSettings,
        best_path: Path | str,
        history_path: Path | str,
        state_dir: Path | str,
        network_name: str,
        on_batch_end: Callable[[int, int], None] | None = None,
        group: distributed.Group | None = None,
        tensorboard_dir: Path | str | None = None,
    ) -> None:
        self.t_start = time.perf_counter()
        train_paths, val_paths = [Path(p) for p in train_shards], [Path(p) for p in val_shards]
        for p in train_paths + val_paths:
            if not p.is_file():
                raise SsimreconError(f"{p}: shard does not exist")
        if not train_paths or not val_paths:
            raise SsimreconError("training needs at least one training and one validation shard")
        self.network, self.settings, self.on_batch_end = network_name, settings, on_batch_end
        self.best_path, self.history_path = Path(best_path), Path(history_path)
        self.loss_terms, self.terms = dict(loss_terms), tuple(loss_terms)  # terms: history order
        loss_fn = build_loss(self.loss_terms)
        # several processes (torchrun's environment) join their group here, one device each
        self.group = group = distributed.from_environment() if group is None else group
        self.device = distributed.start(group, settings.gpus, settings.device)
        self.bf16 = resolve_bf16(settings.bf16, self.device)
        log.info(
            "%s: device: %s (CUDA_VISIBLE_DEVICES=%s, torch sees %d CUDA device(s)), "
            "bf16 autocast %s",
            network_name,
            self.device,
            os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"),
            torch.cuda.device_count(),
            "on" if self.bf16 else "off",
        )
        self.bundle_meta = bundle_metadata(train_paths[0], Path(mask_path))
        mask = self.bundle_meta.mask  # the undersampling of every slice (applied on reading)
        self.checkpointer = Checkpointer(
            Path(state_dir),
            self.best_path,
            fingerprint=fingerprint(model_cfg, loss_terms, settings, train_paths, val_paths, mask),
            network=network_name,
            terms=self.terms,
        )
        self.train_set = SliceDataset(train_paths, mask, settings.min_signal_fraction)
        self.val_set = SliceDataset(val_paths, mask, settings.min_signal_fraction)
        bs = settings.batch_size
        cap = None if settings.max_train_batches is None else settings.max_train_batches * bs
        self.sampler = EpochSampler(len(self.train_set), settings.seed, max_samples=cap)
        self.n_batches = distributed.n_batches(self.sampler.epoch_length(), bs, group.world)

        forward_model = str(self.train_set.forward_model)
        #: the forward model of the shards and model.data_consistency (nn.reconstructor)
        self.physics = Physics(forward_model, bool(model_cfg.get("data_consistency", False)))
        if self.physics.data_consistency and settings.crop is not None:
            raise SsimreconError(
                "training.crop: data consistency (model.data_consistency) needs whole slices, "
                "whose k-space was measured; set training.crop: null"
            )
        if self.val_set.forward_model != forward_model:
            raise SsimreconError(
                f"validation shards are {self.val_set.forward_model} data, training shards "
                f"{forward_model}"
            )
        torch.manual_seed(settings.seed)
        dev = self.device
        self.model = training_model(
            model_cfg, dev, settings.channels_last, settings.instance_norm, forward_model
        )
        settings.check_crop(self.train_set.shape, 2**self.model.depth)  # type: ignore[arg-type]
        self.loss_fn = loss_fn.to(dev)
        self.optimizer = make_optimizer(self.model, settings.lr, dev)
        wrapped: torch.nn.Module = self.model  # self.model: the weights saved and loaded
        if group.active:
            ids = [dev] if dev.type == "cuda" else None
            wrapped = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        maps = self.train_set.sensitivities
        per_slice = bool(self.train_set.per_slice_sensitivities)
        if per_slice and self.physics.data_consistency:
            raise SsimreconError(
                "model.data_consistency: not available for measured k-space (source.fastmri), "
                "whose sensitivities differ per slice; set it to false"
            )
        sens = None if maps is None else torch.from_numpy(maps).to(dev)
        #: how loader batches become network inputs (prepare_batch)
        self.batch_physics = BatchPhysics(forward_model, sens, self.physics.data_consistency)
        #: the U-Net as it is applied: input, (data consistency,) magnitude out
        self.reconstructor = Reconstructor(
            self.model, self.physics, mask, maps, maps_per_batch=per_slice
        ).to(dev)
        recon = Reconstructor(wrapped, self.physics, mask, maps, maps_per_batch=per_slice).to(dev)
        self.net = compiled(recon, settings.compile)  # what the training step calls
        pin, workers = dev.type == "cuda", settings.num_workers
        self.flat_index = self.train_set.flat_index.to(dev)  # network input from samples
        self.shape: tuple[int, int] = self.train_set.shape  # type: ignore[assignment]
        ranks = distributed.RankBatchSampler(self.sampler, bs, group) if group.active else None
        self.train_loader = make_loader(self.train_set, bs, self.sampler, workers, pin, ranks)
        self.val_loader = make_loader(self.val_set, bs, None, workers, pin)

        self.best = Best.none()
        self.history: list[EpochRecord] = []
        self.progress = EpochProgress.fresh(len(self.terms))
        self.start_epoch, self.start_batch = 0, 0
        self.resumed_from: list[int] | None = None
        self.stop = StopFlag()
        self.board = TrainingBoard(tensorboard_dir, group.is_main)  # no-op unless asked for
        self._board_batch: dict[str, Any] | None = None  # the validation slices it shows

    def fit(self) -> dict[str, Any]:
        """Resume or reset, run the remaining epochs, publish best.pt; returns the summary dict.

        Raises :class:`TrainingInterrupted` (state saved) when SIGTERM/SIGUSR1 arrives.
        """
        device = self.device.type
        with deterministic_algorithms(device == "cpu"), cuda_fast_math(device == "cuda"):
            self.resume_or_reset()
            log.info(
                "training %s on %s (bf16 %s, channels_last %s): %d of %d training slices, %d of %d "
                "validation slices, %d batches/epoch",
                self.network,
                self.device,
                self.bf16,
                self.settings.channels_last,
                len(self.train_set),
                self.train_set.num_total,
                len(self.val_set),
                self.val_set.num_total,
                self.n_batches,
            )
            try:
                with stop_signals(self.stop):
                    for epoch in range(self.start_epoch, self.settings.epochs):
                        self.run_epoch(epoch)
                return self.finish()
            finally:
                self.board.close()
                distributed.stop()

    def resume_or_reset(self) -> None:
        """Resume from ``last.pt`` if its fingerprint matches; otherwise move a foreign state aside.

        Resuming restores weights, optimiser, position, best result, history, progress and RNG
        states, re-publishes best.pt if the workflow output was deleted, and rewrites history.csv.
        With several processes rank 0 goes first (it alone moves or publishes files), then the
        others load the same state; their loss sums restart at zero (rank 0 carries the sums).
        """
        if not self.group.is_main:
            self.group.barrier()
        self._resume_or_reset()
        if self.group.is_main:
            self.group.barrier()
        else:
            self.progress.set_sums(0.0, [0.0] * len(self.terms), 0)

    def _resume_or_reset(self) -> None:
        state = self.checkpointer.resume()
        if state is None:
            return
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.start_epoch, self.start_batch = state.epoch, state.next_batch
        self.best, self.history, self.progress = state.best, state.history, state.progress
        set_rng_state(state.rng, self.device)
        self.resumed_from = [self.start_epoch, self.start_batch]
        stopped_by = f", saved on {state.stopped_by}" if state.stopped_by else ""
        log.info(
            "resuming %s from epoch %d batch %d (%s%s)",
            self.network,
            self.start_epoch + 1,
            self.start_batch,
            self.checkpointer.last_path,
            stopped_by,
        )
        if self.group.is_main:
            if self.best.epoch is not None:
                self.checkpointer.restore_best()
            self.write_history()

    def write_history(self) -> None:
        """Rewrite history.csv with every finished epoch."""
        write_history(self.history_path, [r.to_row() for r in self.history], self.terms)

    def run_epoch(self, epoch: int) -> None:
        """One epoch: the training batches (from the resumed batch), validation, then
        :meth:`end_epoch`.  Raises :class:`TrainingInterrupted` (state saved) on a stop signal."""
        b0 = self.start_batch if epoch == self.start_epoch else 0
        if epoch != self.start_epoch:
            self.progress = EpochProgress.fresh(len(self.terms))
        t0 = time.perf_counter()
        self.model.train()
        if b0 < self.n_batches:
            self.train_epoch(epoch, b0, t0)
        t_train = time.perf_counter() - t0
        validation = self.validate()
        if validation is None:  # signal during validation: training part of the epoch is done
            self.progress.add_seconds(t_train, time.perf_counter() - t0)
            raise self._interrupt(epoch, self.n_batches)
        self.end_epoch(
            epoch,
            validation,
            self.progress.train_seconds + t_train,
            self.progress.epoch_seconds + time.perf_counter() - t0,
        )

    def train_epoch(self, epoch: int, b0: int, t0: float) -> None:
        """Optimiser steps over batches ``b0..`` of ``epoch``, adding to :attr:`progress`.

        The running loss and term sums stay on the device (no sync per batch) and continue in the
        same order on resume.  On a stop signal the progress and times (since ``t0``) are saved
        with the state and :class:`TrainingInterrupted` is raised.
        """
        settings, device, progress = self.settings, self.device, self.progress
        self.sampler.set_epoch(epoch, skip=b0 * settings.batch_size)
        epoch_slices = self.sampler.epoch_length()
        bar = progress_bar(
            epoch_slices,
            f"train {self.network} epoch {epoch + 1}/{settings.epochs}",
            "slices",
            initial=min(b0 * settings.batch_size, epoch_slices),
        )
        loss_sum = torch.tensor(progress.loss_sum, dtype=torch.float64, device=device)
        term_sums = torch.tensor(progress.term_sums, dtype=torch.float64, device=device)
        bs, rank, world = settings.batch_size, self.group.rank, self.group.world
        physics = self.batch_physics
        for b, batch in enumerate(self.train_loader, start=b0):
            x, target, data_range = prepare_batch(
                batch, device, self.flat_index, self.shape, physics
            )
            measured = (
                measured_kspace(batch, device, self.flat_index, self.shape)
                if physics.measured
                else None
            )
            size = min(bs, epoch_slices - b * bs)  # the global batch (host ints: no sync)
            first, count = distributed.share(size, rank, world)
            if settings.crop is not None:
                crop_seed = derive_seed("crop", settings.seed, epoch, b)
                x, target = crop_batch(
                    x,
                    target,
                    settings.crop,
                    crop_seed,
                    first,
                    size,
                    focus=settings.crop_focus,
                    data_range=data_range,
                )
            self.set_lr(epoch * self.n_batches + b)
            total, terms = train_step(
                self.net,
                self.optimizer,
                self.loss_fn,
                (x, target, data_range),
                self.terms,
                bf16=self.bf16,
                channels_last=settings.channels_last,
                loss_scale=world * count / size,
                measured=measured,
            )
            self.board.step(epoch * self.n_batches + b, total)  # reads the loss only when due
            loss_sum += total.double() * count
            term_sums += terms.double() * count
            progress.slices += count
            bar.update(size)
            if self.on_batch_end is not None:
                self.on_batch_end(epoch, b)
            if self.group.check_due(b, self.n_batches) and self._stopped_anywhere():
                progress.set_sums(*self.group.reduce_sums(loss_sum, term_sums, progress.slices))
                now = time.perf_counter()
                progress.add_seconds(now - t0, now - t0)
                bar.close()
                raise self._interrupt(epoch, b + 1)
        bar.close()
        progress.set_sums(*self.group.reduce_sums(loss_sum, term_sums, progress.slices))

    def set_lr(self, step: int) -> None:
        """The learning rate of 0-based optimiser ``step`` (``training.lr_schedule``)."""
        s = self.settings
        lr = learning_rate(s.lr_schedule, s.lr, step, s.epochs * self.n_batches)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _stopped_anywhere(self) -> bool:
        """The stop flag of any rank (all-reduced when several), copied to this rank's flag."""
        self.stop.signum = self.group.any_stop(self.stop.signum, self.device)
        return self.stop.signum is not None

    def validate(self) -> Validation | None:
        """Slice means over the validation slices (:func:`validation.validate`; every rank
        validates all of them); None on a stop signal."""
        return validate(
            self.reconstructor,
            track(self.val_loader, f"validate {self.network}", "batches"),
            self.loss_fn,
            self.terms,
            device=self.device,
            flat_index=self.flat_index,
            shape=self.shape,
            bf16=self.bf16,
            channels_last=self.settings.channels_last,
            stopped=self._stopped_anywhere,
            physics=self.batch_physics,
        )

    def end_epoch(
        self, epoch: int, validation: Validation, train_seconds: float, seconds: float
    ) -> None:
        """Record a finished epoch: history record, best checkpoint, history.csv, ``last.pt``, log.

        ``train_seconds``/``seconds``: the epoch's training and total wall time (over restarts).  A
        stop signal that arrived during the last validation batch interrupts here, at the start of
        the next epoch.
        """
        done = self.progress
        slices = max(done.slices, 1)
        record = EpochRecord(
            epoch=epoch + 1,
            train_loss=done.loss_sum / slices,
            train_terms={t: v / slices for t, v in zip(self.terms, done.term_sums)},
            validation=validation,
            seconds=round(seconds, 3),
            slices_per_s=round(done.slices / train_seconds, 2) if train_seconds > 0 else 0.0,
            lr=self.optimizer.param_groups[0]["lr"],
        )
        self.history.append(record)
        self.board.epoch(record)
        self._board_images(epoch + 1)
        if self.best.improved_by(validation):
            self.save_best(epoch, validation)
        if self.group.is_main:
            self.write_history()
        self.progress = EpochProgress.fresh(len(self.terms))
        self.save_state(epoch + 1, 0)
        log.info(
            "epoch %d/%d train_loss %.6g val_loss %.6g (%s) val_ssim %.4f val_psnr %.2f %.1fs "
            "%.1f slices/s%s; run ETA %s",
            epoch + 1,
            self.settings.epochs,
            record.train_loss,
            validation.loss,
            ", ".join(f"{t} {v:.4g}" for t, v in validation.terms.items()),
            validation.ssim,
            validation.psnr,
            seconds,
            record.slices_per_s,
            " *best*" if self.best.epoch == epoch + 1 else "",
            run_eta(self.history, self.settings.epochs),
        )
        if self._stopped_anywhere():
            raise self._interrupt(epoch + 1, 0)

    @torch.no_grad()
    def _board_images(self, epoch: int) -> None:
        """The board's validation panels: the first validation batch, predicted as evaluated."""
        if not self.board.enabled:
            return
        if self._board_batch is None:
            self._board_batch = next(iter(self.val_loader))
        batch, physics = self._board_batch, self.batch_physics
        x, target, data_range = prepare_batch(
            batch, self.device, self.flat_index, self.shape, physics
        )
        measured = (
            measured_kspace(batch, self.device, self.flat_index, self.shape)
            if physics.measured
            else None
        )
        self.model.eval()
        pred = predict(
            self.reconstructor, x, self.device, self.bf16, self.settings.channels_last, measured
        )
        self.model.train()
        self.board.images(epoch, input_magnitude(x), pred, target, data_range)

    def save_best(self, epoch: int, validation: Validation) -> None:
        """New best validation loss: rank 0 writes the bundle to ``state_dir/best.pt`` and
        publishes it."""
        self.best = Best.of(epoch + 1, validation)
        if not self.group.is_main:
            return
        self.checkpointer.save_best(
            self.model,
            self.bundle_meta,
            extra={
                "network": self.network,
                "epoch": epoch + 1,
                **self.best.scores(),
                "loss_terms": self.loss_terms,
                "training": self.settings.to_dict(),
            },
            data_consistency=self.physics.data_consistency,
        )

    def save_state(self, epoch: int, next_batch: int) -> None:
        """Write ``last.pt`` (rank 0) so that a rerun starts at (``epoch``, ``next_batch``)."""
        if not self.group.is_main:
            return
        self.checkpointer.save(
            model=self.model,
            optimizer=self.optimizer,
            device=self.device,
            epoch=epoch,
            next_batch=next_batch,
            best=self.best,
            history=self.history,
            progress=self.progress,
            stopped_by=signal.Signals(self.stop.signum).name if self.stop.signum else None,
        )

    def _interrupt(self, epoch: int, next_batch: int) -> TrainingInterrupted:
        """Save the state at (``epoch``, ``next_batch``), log it, return the exception to raise."""
        self.save_state(epoch, next_batch)
        signum = self.stop.signum or signal.SIGTERM
        last_path = self.checkpointer.last_path
        exc = TrainingInterrupted(signum, last_path, epoch, next_batch)
        log.warning(
            "%s: received %s; saved state to %s at epoch %d batch %d; rerun to resume",
            self.network,
            signal.Signals(signum).name,
            last_path,
            epoch + 1,
            next_batch,
        )
        return exc

    def finish(self) -> dict[str, Any]:
        """After the last epoch: make sure best.pt is published and history.csv written; the summary
        dict."""
        best = self.best
        self.group.barrier()  # rank 0 has written best.pt
        if best.epoch is None or not self.checkpointer.has_best():
            raise SsimreconError(
                f"{self.network}: no best checkpoint was written in {self.settings.epochs} epochs "
                f"(validation loss never finite; see {self.history_path})"
            )
        if self.group.is_main:
            self.checkpointer.restore_best()
            self.write_history()
        log.info(
            "finished %s: best epoch %s val_loss %.6g val_ssim %.4f -> %s",
            self.network,
            best.epoch,
            best.val_loss,
            best.val_ssim,
            self.best_path,
        )
        return {
            "network": self.network,
            "epochs": self.settings.epochs,
            "best_epoch": best.epoch,
            "best_val_loss": best.val_loss,
            "best_val_ssim": best.val_ssim,
            "best_val_psnr": best.val_psnr,
            "resumed_from": self.resumed_from,
            "device": str(self.device),
            "bf16": self.bf16,
            "channels_last": self.settings.channels_last,
            "train_slices": len(self.train_set),
            "val_slices": len(self.val_set),
            "seconds": time.perf_counter() - self.t_start,
            "best_path": str(self.best_path),
            "history_path": str(self.history_path),
            "state_path": str(self.checkpointer.last_path),
        }


def run_eta(history: Sequence[EpochRecord], epochs: int) -> str:
    """``h:mm:ss`` left for the whole run: the epochs not yet done x the mean epoch time so far
    (over every epoch recorded, resumed ones included); ``0:00:00`` after the last."""
    if not history:
        return "?"
    mean = sum(r.seconds for r in history) / len(history)
    left = max(0, epochs - history[-1].epoch) * mean
    seconds = int(round(left))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
