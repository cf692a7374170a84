"""Training loop: seeded, resumable, interruptible; best-by-validation-loss model bundle and history.csv.

What one call of :func:`train_network` does (paper: Adam, lr 1e-4, 100 epochs, best validation loss):

* ``torch.manual_seed(seed)`` before the U-Net is built; on CPU ``torch.use_deterministic_algorithms``
  (warn only), so CPU runs with equal settings give bit-identical weights.
* Each epoch visits the training slices in the order of :class:`~ssimrecon.dataset.EpochSampler`
  (a function of (seed, epoch) only); optional random crops are drawn in the main process from a
  generator seeded by (seed, epoch, batch).  Validation covers every validation slice that passes the
  ``min_signal_fraction`` rule, uncropped, in a fixed order: composite loss, mean SSIM, mean PSNR
  (per image, data_range = the volume's maximum).
* Whenever the validation loss improves, the model bundle is written to ``state_dir/best.pt`` and
  published to ``best_path`` (hard link or copy, then ``os.replace``), so Snakemake deleting the outputs
  of a failed job never loses it.
* ``state_dir/last.pt`` is written atomically at the end of every epoch and when SIGTERM/SIGUSR1 arrives
  (at the next batch boundary, mid-epoch included: epoch, next batch, accumulators, RNG states).  It holds
  only tensors and primitives (``torch.load(weights_only=True)``) and a fingerprint of the model/loss/
  training settings and shards; a matching state is resumed (bit-identical to an uninterrupted run on
  CPU), a different one is moved aside to ``last.pt.stale``.  Interrupted runs raise
  :class:`TrainingInterrupted`; the CLI exits with 128 + signal number.
* history.csv (epoch, train_loss, val_loss, val_ssim, val_psnr, seconds, slices_per_s, lr) is rewritten
  atomically after every epoch; ``seconds`` is the epoch's wall time (training + validation),
  ``slices_per_s`` the training throughput.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ssimrecon.atomic import atomic_output, write_text_atomic
from ssimrecon.dataset import EpochSampler, SliceDataset, derive_seed, make_loader, to_network_input
from ssimrecon.errors import CheckpointError, SsimreconError
from ssimrecon.inference import pick_device
from ssimrecon.losses import CompositeLoss, build_loss
from ssimrecon.modelio import atomic_torch_save, safe_torch_load, save_model_bundle, to_plain
from ssimrecon.shards import ShardReader
from ssimrecon.ssim import ssim
from ssimrecon.unet import UNet

log = logging.getLogger("ssimrecon.train")

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_ssim", "val_psnr", "seconds", "slices_per_s", "lr")
STATE_FORMAT = "ssimrecon-train-state"
STATE_VERSION = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
TRAIN_DEVICE_TYPES = ("cpu", "cuda")  # training is only tested on these (no MPS, even for "auto")

__all__ = [
    "TrainSettings",
    "TrainingInterrupted",
    "train_network",
    "train_step_throughput",
    "resolve_device",
    "resolve_bf16",
    "cpu_supports_bf16",
    "fingerprint",
    "main",
]


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving its state; ``exit_code`` is 128 + signal number."""

    def __init__(self, signum: int, state_path: Path, epoch: int, batch: int) -> None:
        self.signum, self.state_path, self.epoch, self.batch = signum, state_path, epoch, batch
        self.exit_code = 128 + signum
        super().__init__(f"{signal.Signals(signum).name}: state saved to {state_path} (epoch {epoch + 1} batch {batch})")


# ----------------------------------------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The ``training:`` config section (see workflow/schemas/config.schema.yaml)."""

    epochs: int = 100
    batch_size: int = 4
    lr: float = 1e-4
    seed: int = 0
    crop: tuple[int, int] | None = None
    num_workers: int = 2
    device: str = "auto"
    bf16: str | bool = "auto"
    channels_last: bool = True
    min_signal_fraction: float = 0.05
    max_train_batches: int | None = None

    def __post_init__(self) -> None:
        def need_int(key: str, value: Any, minimum: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise SsimreconError(f"training.{key}: must be an integer >= {minimum}, got {value!r}")

        need_int("epochs", self.epochs, 1)
        need_int("batch_size", self.batch_size, 1)
        need_int("num_workers", self.num_workers, 0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise SsimreconError(f"training.seed: must be an integer, got {self.seed!r}")
        if self.max_train_batches is not None:
            need_int("max_train_batches", self.max_train_batches, 1)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (math.isfinite(self.lr) and self.lr > 0):
            raise SsimreconError(f"training.lr: must be a positive number, got {self.lr!r}")
        msf = self.min_signal_fraction
        if isinstance(msf, bool) or not isinstance(msf, (int, float)) or not 0 <= msf <= 1:
            raise SsimreconError(f"training.min_signal_fraction: must be a number in [0, 1], got {msf!r}")
        if self.crop is not None:
            crop = self.crop
            if (not isinstance(crop, (list, tuple)) or len(crop) != 2
                    or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in crop)):
                raise SsimreconError(f"training.crop: must be null or two positive integers [H, W], got {crop!r}")
            object.__setattr__(self, "crop", (int(crop[0]), int(crop[1])))
        bf16 = self.bf16
        if isinstance(bf16, str) and bf16.lower() in {"auto", "true", "false"}:
            bf16 = {"auto": "auto", "true": True, "false": False}[bf16.lower()]
        if bf16 not in ("auto", True, False) or isinstance(bf16, int) and not isinstance(bf16, bool):
            raise SsimreconError(f"training.bf16: must be 'auto', true or false, got {self.bf16!r}")
        object.__setattr__(self, "bf16", bf16)
        if not isinstance(self.channels_last, bool):
            raise SsimreconError(f"training.channels_last: must be true or false, got {self.channels_last!r}")
        if not isinstance(self.device, str) or not self.device:
            raise SsimreconError(f"training.device: must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainSettings:
        """Build from a config mapping; unknown keys raise an error naming ``training.<key>``."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise SsimreconError(f"training.{key}: unknown training setting; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (crop as a list)."""
        out = dataclasses.asdict(self)
        out["crop"] = None if self.crop is None else list(self.crop)
        return out


def resolve_device(setting: str) -> torch.device:
    """``training.device`` -> device: 'auto' -> cuda if available else cpu; only cpu and cuda are accepted."""
    return pick_device(setting, key="training.device", types=TRAIN_DEVICE_TYPES)


def cpu_supports_bf16() -> bool:
    """True if oneDNN is available and the CPU has native bf16 (AVX512-BF16 or AMX)."""
    if not torch.backends.mkldnn.is_available():
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if check is not None)


def resolve_bf16(setting: str | bool, device: torch.device) -> bool:
    """'auto' -> bf16 autocast on CUDA (if supported) and on CPUs with native bf16; booleans force."""
    if setting is True or setting is False:
        return setting
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_supports_bf16()


def fingerprint(model_cfg: Mapping[str, Any], loss_terms: Mapping[str, float], settings: TrainSettings,
                train_shards: Sequence[Path], val_shards: Sequence[Path]) -> str:
    """SHA-256 of everything that changes the result (num_workers does not; shards by path and size)."""
    def shard_ids(paths: Sequence[Path]) -> list[list[Any]]:
        return [[os.path.abspath(p), os.path.getsize(p)] for p in paths]

    settings_d = settings.to_dict()
    settings_d.pop("num_workers")
    blob = json.dumps(
        {"model": dict(model_cfg), "loss": dict(loss_terms), "training": settings_d,
         "train": shard_ids(train_shards), "val": shard_ids(val_shards)},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


# ----------------------------------------------------------------------------------------------- helpers
def build_model(model_cfg: Mapping[str, Any]) -> UNet:
    """``UNet(**model_cfg)`` with unknown keys reported as ``model.<key>``."""
    import inspect

    allowed = set(inspect.signature(UNet.__init__).parameters) - {"self"}
    for key in model_cfg:
        if key not in allowed:
            raise SsimreconError(f"model.{key}: unknown model setting; known: {sorted(allowed)}")
    return UNet(**dict(model_cfg))


class _StopFlag:
    """Signal handler that only records the signal; the loop acts on it at a batch boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum


@contextlib.contextmanager
def _stop_signals(flag: _StopFlag) -> Iterator[None]:
    """Install ``flag`` for SIGTERM/SIGUSR1 (main thread only) and restore the old handlers afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, flag) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """torch.use_deterministic_algorithms(True, warn_only=True) for the duration, then restore."""
    if not enabled:
        yield
        return
    old, old_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
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


def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite history.csv atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in HISTORY_COLUMNS})
    write_text_atomic(path, buf.getvalue())


def _publish(src: Path, dst: Path) -> None:
    """Make ``dst`` an atomic copy of ``src`` (hard link when possible)."""
    with atomic_output(dst) as tmp:
        tmp.unlink()  # os.link needs a free name
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _plain_preprocessing(value: Any) -> dict:
    """Shard preprocessing attr (Preprocessing, JSON text or dict) -> plain dict (as evaluation compares it)."""
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
    meta = {"seed": to_plain(attrs.get("mask_seed"), "mask_seed"),
            "acceleration": to_plain(attrs.get("acceleration"), "acceleration")}
    return preprocessing, mask, meta


def _crop_batch(x: torch.Tensor, y: torch.Tensor, crop: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (per image) crop of input and target to ``crop``, offsets from a generator seeded by ``seed``."""
    h, w = x.shape[-2:]
    ch, cw = crop
    if ch > h or cw > w:
        raise SsimreconError(f"training.crop: {list(crop)} is larger than the images ({h}x{w})")
    if (ch, cw) == (h, w):
        return x, y
    g = torch.Generator().manual_seed(seed)
    tops = torch.randint(0, h - ch + 1, (x.shape[0],), generator=g).tolist()
    lefts = torch.randint(0, w - cw + 1, (x.shape[0],), generator=g).tolist()
    xs = torch.stack([x[i, :, t : t + ch, l : l + cw] for i, (t, l) in enumerate(zip(tops, lefts))])
    ys = torch.stack([y[i, :, t : t + ch, l : l + cw] for i, (t, l) in enumerate(zip(tops, lefts))])
    return xs, ys


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _prepare(batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch -> (zero-filled input (B,1,H,W), target (B,1,H,W), data_range (B,)) on ``device``."""
    nb = device.type == "cuda"
    kspace = batch["kspace"].to(device, non_blocking=nb)
    target = batch["target"].to(device, non_blocking=nb)
    data_range = batch["data_range"].to(device, non_blocking=nb)
    return to_network_input(kspace), target, data_range


def _predict(model: torch.nn.Module, x: torch.Tensor, device: torch.device, bf16: bool, channels_last: bool) -> torch.Tensor:
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with _autocast(device, bf16):
        pred = model(x)
    return pred.float()  # the loss and SSIM run in float32


@torch.no_grad()
def _validate(model: torch.nn.Module, loader: Any, loss_fn: CompositeLoss, device: torch.device, bf16: bool,
              channels_last: bool, stop: _StopFlag, desc: str) -> dict[str, float] | None:
    """Mean composite loss, SSIM and PSNR over the validation loader; None if a stop signal arrived."""
    model.eval()
    loss_sum, ssim_sum, psnr_sum, n = 0.0, 0.0, 0.0, 0
    for batch in tqdm(loader, desc=desc, leave=False, disable=None):
        if stop.signum is not None:
            return None
        x, target, data_range = _prepare(batch, device)
        pred = _predict(model, x, device, bf16, channels_last)
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


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in state["cuda"]])


def _load_state(path: Path) -> dict[str, Any]:
    state = safe_torch_load(path, map_location="cpu")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an ssimrecon training state (format key is not {STATE_FORMAT!r})")
    if state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: unsupported training state version {state.get('version')!r}")
    return state


def _fresh_accumulators() -> dict[str, Any]:
    return {"loss_sum": 0.0, "slices": 0, "train_seconds": 0.0, "epoch_seconds": 0.0}


# ----------------------------------------------------------------------------------------------- training
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

    ``on_batch_end(epoch, batch)`` (0-based) is called after every optimiser step, before the stop check
    (progress hooks, tests).  Raises :class:`TrainingInterrupted` after saving the state on SIGTERM/SIGUSR1.
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
    log.info("%s: device: %s (CUDA_VISIBLE_DEVICES=%s, torch sees %d CUDA device(s)), bf16 autocast %s",
             network_name, device, os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"),
             torch.cuda.device_count(), "on" if bf16 else "off")
    with _deterministic(device.type == "cpu"), _cudnn_benchmark(device.type == "cuda"):
        return _train(train_shards, val_shards, dict(model_cfg), dict(loss_terms), loss_fn, settings, device, bf16,
                      best_path, history_path, state_dir, network_name, on_batch_end)


def _train(train_shards: list[Path], val_shards: list[Path], model_cfg: dict, loss_terms: dict,
           loss_fn: CompositeLoss, settings: TrainSettings, device: torch.device, bf16: bool, best_path: Path,
           history_path: Path, state_dir: Path, network: str,
           on_batch_end: Callable[[int, int], None] | None) -> dict[str, Any]:
    t_start = time.perf_counter()
    fp = fingerprint(model_cfg, loss_terms, settings, train_shards, val_shards)
    train_set = SliceDataset(train_shards, settings.min_signal_fraction)
    val_set = SliceDataset(val_shards, settings.min_signal_fraction)
    bs = settings.batch_size
    cap = None if settings.max_train_batches is None else settings.max_train_batches * bs
    sampler = EpochSampler(len(train_set), settings.seed, max_samples=cap)
    n_batches = math.ceil(sampler.epoch_length() / bs)
    if settings.crop is not None and train_set.shape is not None and (
            settings.crop[0] > train_set.shape[0] or settings.crop[1] > train_set.shape[1]):
        raise SsimreconError(f"training.crop: {list(settings.crop)} is larger than the images {list(train_set.shape)}")

    torch.manual_seed(settings.seed)
    model = build_model(model_cfg).to(device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = loss_fn.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)

    state_dir.mkdir(parents=True, exist_ok=True)
    last_path, state_best = state_dir / "last.pt", state_dir / "best.pt"
    start_epoch, start_batch = 0, 0
    best: dict[str, Any] = {"val_loss": math.inf, "epoch": None, "val_ssim": None, "val_psnr": None}
    history: list[dict[str, Any]] = []
    acc = _fresh_accumulators()
    resumed_from: list[int] | None = None
    if last_path.exists():
        state = _load_state(last_path)
        if state.get("fingerprint") == fp:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start_epoch, start_batch = int(state["epoch"]), int(state["next_batch"])
            best, history, acc = dict(state["best"]), list(state["history"]), dict(state["accumulators"])
            _set_rng_state(state["rng"], device)
            resumed_from = [start_epoch, start_batch]
            log.info("resuming %s from epoch %d batch %d (%s)", network, start_epoch + 1, start_batch, last_path)
            if best["epoch"] is not None and state_best.exists() and not best_path.exists():
                _publish(state_best, best_path)
            _write_history(history_path, history)
        else:
            stale = last_path.with_name("last.pt.stale")
            os.replace(last_path, stale)
            if state_best.exists():
                os.replace(state_best, state_best.with_name("best.pt.stale"))
            log.warning("%s: training state of another configuration moved to %s; starting %s afresh",
                        last_path, stale, network)

    preprocessing, mask, mask_meta = _shard_metadata(train_shards[0])
    pin = device.type == "cuda"
    train_loader = make_loader(train_set, bs, sampler, settings.num_workers, pin)
    val_loader = make_loader(val_set, bs, None, settings.num_workers, pin)
    log.info("training %s on %s (bf16 %s, channels_last %s): %d of %d training slices, %d of %d validation slices, "
             "%d batches/epoch", network, device, bf16, settings.channels_last, len(train_set), train_set.num_total,
             len(val_set), val_set.num_total, n_batches)

    def save_state(epoch: int, next_batch: int) -> None:
        atomic_torch_save({
            "format": STATE_FORMAT, "version": STATE_VERSION, "fingerprint": fp, "network": network,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": to_plain(optimizer.state_dict(), "optimizer"),
            "epoch": epoch, "next_batch": next_batch, "best": dict(best), "history": [dict(r) for r in history],
            "rng": _rng_state(device), "accumulators": dict(acc),
        }, last_path)

    def interrupt(epoch: int, next_batch: int) -> TrainingInterrupted:
        save_state(epoch, next_batch)
        exc = TrainingInterrupted(stop.signum or signal.SIGTERM, last_path, epoch, next_batch)
        log.warning("%s: received %s; saved state to %s at epoch %d batch %d; rerun to resume",
                    network, signal.Signals(exc.signum).name, last_path, epoch + 1, next_batch)
        return exc

    stop = _StopFlag()
    with _stop_signals(stop):
        for epoch in range(start_epoch, settings.epochs):
            b0 = start_batch if epoch == start_epoch else 0
            if epoch != start_epoch:
                acc = _fresh_accumulators()
            t0 = time.perf_counter()
            model.train()
            if b0 < n_batches:
                sampler.set_epoch(epoch, skip=b0 * bs)
                bar = tqdm(train_loader, total=n_batches, initial=b0, leave=False, disable=None,
                           desc=f"{network} {epoch + 1}/{settings.epochs}")
                # running loss sum on the device (no sync per batch), continued in the same order on resume
                loss_sum = torch.tensor(acc["loss_sum"], dtype=torch.float64, device=device)
                for b, batch in enumerate(bar, start=b0):
                    x, target, data_range = _prepare(batch, device)
                    if settings.crop is not None:
                        x, target = _crop_batch(x, target, settings.crop, derive_seed("crop", settings.seed, epoch, b))
                    pred = _predict(model, x, device, bf16, settings.channels_last)
                    total, _ = loss_fn(pred, target, data_range)
                    optimizer.zero_grad(set_to_none=True)
                    total.backward()
                    optimizer.step()
                    loss_sum += total.detach().double() * target.shape[0]
                    acc["slices"] += int(target.shape[0])
                    if on_batch_end is not None:
                        on_batch_end(epoch, b)
                    if stop.signum is not None:
                        acc["loss_sum"] = float(loss_sum)
                        now = time.perf_counter()
                        acc["train_seconds"] += now - t0
                        acc["epoch_seconds"] += now - t0
                        bar.close()
                        raise interrupt(epoch, b + 1)
                acc["loss_sum"] = float(loss_sum)
            t_train = time.perf_counter() - t0
            metrics = _validate(model, val_loader, loss_fn, device, bf16, settings.channels_last, stop,
                                f"{network} val")
            if metrics is None:  # signal during validation: training part of the epoch is done
                acc["train_seconds"] += t_train
                acc["epoch_seconds"] += time.perf_counter() - t0
                raise interrupt(epoch, n_batches)
            train_seconds = acc["train_seconds"] + t_train
            seconds = acc["epoch_seconds"] + time.perf_counter() - t0
            row = {
                "epoch": epoch + 1,
                "train_loss": acc["loss_sum"] / max(acc["slices"], 1),
                **metrics,
                "seconds": round(seconds, 3),
                "slices_per_s": round(acc["slices"] / train_seconds, 2) if train_seconds > 0 else 0.0,
                "lr": optimizer.param_groups[0]["lr"],
            }
            history.append(row)
            if math.isfinite(metrics["val_loss"]) and metrics["val_loss"] < best["val_loss"]:
                best = {"val_loss": metrics["val_loss"], "epoch": epoch + 1, "val_ssim": metrics["val_ssim"],
                        "val_psnr": metrics["val_psnr"]}
                save_model_bundle(state_best, model=model, preprocessing=preprocessing, mask=mask, mask_meta=mask_meta,
                                  extra={"network": network, "epoch": epoch + 1, "val_loss": metrics["val_loss"],
                                         "val_ssim": metrics["val_ssim"], "val_psnr": metrics["val_psnr"],
                                         "loss_terms": loss_terms, "training": settings.to_dict()})
                _publish(state_best, best_path)
            _write_history(history_path, history)
            acc = _fresh_accumulators()
            save_state(epoch + 1, 0)
            log.info("epoch %d/%d train_loss %.6g val_loss %.6g val_ssim %.4f val_psnr %.2f %.1fs %.1f slices/s%s",
                     epoch + 1, settings.epochs, row["train_loss"], row["val_loss"], row["val_ssim"], row["val_psnr"],
                     seconds, row["slices_per_s"], " *best*" if best["epoch"] == epoch + 1 else "")
            if stop.signum is not None:
                raise interrupt(epoch + 1, 0)

    if best["epoch"] is None or not state_best.exists():
        raise SsimreconError(
            f"{network}: no best checkpoint was written in {settings.epochs} epochs "
            f"(validation loss never finite; see {history_path})"
        )
    if not best_path.exists():
        _publish(state_best, best_path)
    _write_history(history_path, history)
    summary = {
        "network": network, "epochs": settings.epochs, "best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
        "best_val_ssim": best["val_ssim"], "best_val_psnr": best["val_psnr"], "resumed_from": resumed_from,
        "device": str(device), "bf16": bf16, "channels_last": settings.channels_last,
        "train_slices": len(train_set), "val_slices": len(val_set), "seconds": time.perf_counter() - t_start,
        "best_path": str(best_path), "history_path": str(history_path), "state_path": str(last_path),
    }
    log.info("finished %s: best epoch %s val_loss %.6g val_ssim %.4f -> %s", network, best["epoch"],
             best["val_loss"], best["val_ssim"], best_path)
    return summary


# ----------------------------------------------------------------------------------------------- benchmark
def train_step_throughput(model_cfg: Mapping[str, Any], batch_size: int, size: int | tuple[int, int], fast: bool,
                          steps: int = 10, device: str | torch.device = "auto", warmup: int = 2) -> float:
    """Slices/s of full training steps (forward, MSE+0.1 dSSIM, backward, Adam) on random data.

    ``fast=False``: fp32, NCHW; ``fast=True``: channels_last + bf16 autocast (loss in fp32).
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, 1, h, w, generator=g).to(dev)
    y = torch.rand(batch_size, 1, h, w, generator=g).to(dev)
    torch.manual_seed(0)
    model = build_model(model_cfg).to(dev)
    if fast:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = build_loss({"mse": 1.0, "dssim": 0.1})

    def step() -> None:
        pred = _predict(model, x, dev, fast, fast)
        total, _ = loss_fn(pred, y, 1.0)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch_size / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------- CLI
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


def _setup_logging() -> None:
    logger = logging.getLogger("ssimrecon")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """``ssimrecon train``: train one network; exit 128+signum when stopped by SIGTERM/SIGUSR1."""
    parser = argparse.ArgumentParser(prog="ssimrecon train", description=__doc__.split("\n")[0])
    parser.add_argument("--network", required=True, help="network name (used in logs and the bundle)")
    parser.add_argument("--train-shards", nargs="+", required=True, type=Path)
    parser.add_argument("--val-shards", nargs="+", required=True, type=Path)
    parser.add_argument("--model-json", required=True, help="model settings: JSON object or file")
    parser.add_argument("--loss-json", required=True, help="loss terms {term: weight}: JSON object or file")
    parser.add_argument("--training-json", default="{}", help="training settings: JSON object or file")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--best", required=True, type=Path, help="best model bundle (.pt)")
    parser.add_argument("--history", required=True, type=Path, help="history.csv")
    parser.add_argument("--state-dir", required=True, type=Path, help="resumable state (last.pt, best.pt)")
    args = parser.parse_args(argv)
    _setup_logging()
    if args.threads is not None:
        if args.threads < 1:
            raise SsimreconError(f"--threads: must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    settings = TrainSettings.from_dict(_json_arg(args.training_json, "--training-json"))
    try:
        summary = train_network(
            args.train_shards, args.val_shards,
            model_cfg=_json_arg(args.model_json, "--model-json"),
            loss_terms=_json_arg(args.loss_json, "--loss-json"),
            settings=settings, best_path=args.best, history_path=args.history, state_dir=args.state_dir,
            network_name=args.network,
        )
    except TrainingInterrupted as exc:
        return exc.exit_code
    log.info("summary %s", json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
