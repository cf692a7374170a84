"""Optional TensorBoard logging of a training run (``ssimrecon train --tensorboard DIR``).

history.csv stays the workflow's record; the board is for watching a long run live
(``tensorboard --logdir results/<experiment>/state``).  It writes, under ``DIR`` (rank 0 only):

* ``train/loss`` every :data:`STEP_EVERY` optimiser steps (reading the loss then costs one host
  sync each time, and only when the board is on), x-axis: the global step;
* per epoch: ``train/loss`` and ``train/<term>``, ``val/loss``, ``val/<term>``, ``val/ssim``,
  ``val/psnr``, ``val/mse``, ``time/epoch_s``, ``time/slices_per_s`` and ``lr``, x-axis: the epoch;
* per epoch: the first :data:`IMAGES` validation slices as one image each, the panels zero-filled
  input | network output | reference | 4 x |output - reference|, each scaled by the slice's
  data_range (so 1 is the volume maximum) and clipped to [0, 1].

Without the ``tensorboard`` package a run asked to log stops before training with a one-line error
naming ``--tensorboard`` and the pip package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ssimrecon.errors import SsimreconError
from ssimrecon.training.records import EpochRecord

#: optimiser steps between two ``train/loss`` scalars
STEP_EVERY = 25
#: validation slices shown per epoch
IMAGES = 2
#: gain of the error panel (|output - reference| x 4)
ERROR_GAIN = 4.0


class TrainingBoard:
    """A TensorBoard ``SummaryWriter`` in ``log_dir``; every method is a no-op when ``log_dir``
    is None (the default run) or this process is not the main rank."""

    def __init__(self, log_dir: Path | str | None, is_main: bool = True) -> None:
        self.writer: Any = None
        if log_dir is None or not is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch's module needs the tensorboard package
            raise SsimreconError(
                f"--tensorboard {log_dir}: the 'tensorboard' package is not installed "
                "(pip install tensorboard)"
            ) from exc
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(log_dir))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def wants_step(self, global_step: int) -> bool:
        """Whether :meth:`step` writes at ``global_step`` (if not, the caller skips the sync)."""
        return self.enabled and global_step % STEP_EVERY == 0

    def step(self, global_step: int, loss: torch.Tensor) -> None:
        """``train/loss`` of one optimiser step (a 0-d tensor; read here, one host sync)."""
        if self.wants_step(global_step):
            self.writer.add_scalar("train/loss", float(loss), global_step)

    def epoch(self, record: EpochRecord) -> None:
        """The scalars of one finished epoch (x-axis: epoch number, from 1)."""
        if not self.enabled:
            return
        e, add, val = record.epoch, self.writer.add_scalar, record.validation
        add("train/loss_epoch", record.train_loss, e)
        for term, value in record.train_terms.items():
            add(f"train/{term}", value, e)
        add("val/loss", val.loss, e)
        for term, value in val.terms.items():
            add(f"val/{term}", value, e)
        for name in ("mse", "ssim", "psnr"):
            add(f"val/{name}", getattr(val, name), e)
        add("time/epoch_s", record.seconds, e)
        add("time/slices_per_s", record.slices_per_s, e)
        add("lr", record.lr, e)
        self.writer.flush()

    def images(
        self,
        epoch: int,
        zero_filled: torch.Tensor,
        output: torch.Tensor,
        reference: torch.Tensor,
        data_range: torch.Tensor,
    ) -> None:
        """Validation panels of ``epoch``: tensors (N, 1, H, W) and ``data_range`` (N,)."""
        if not self.enabled:
            return
        for i in range(min(IMAGES, reference.shape[0])):
            scale = float(data_range[i])
            panels = [zero_filled[i], output[i], reference[i]]
            panels.append(ERROR_GAIN * (output[i] - reference[i]).abs())
            row = torch.cat([p.float().cpu() / scale for p in panels], dim=-1).clamp(0, 1)
            self.writer.add_image(f"val/slice{i}", row, epoch)  # (1, H, 4W) CHW
        self.writer.flush()

    def close(self) -> None:
        if self.enabled:
            self.writer.close()
