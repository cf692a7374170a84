"""One training step's computation: the model, a batch on the device, the forward pass, a throughput
probe.

* :func:`build_model` builds the U-Net from the ``model:`` config (unknown keys named
  ``model.<key>``).
* :func:`prepare_batch` moves a loader batch (sampled k-space points) to the device and forms the
  zero-filled network input there; :func:`crop_batch` draws the optional random crops from a
  generator seeded per batch.
* :func:`deterministic_algorithms` and :func:`cudnn_autotune` set torch's global algorithm choice
  for the duration of a run (bit-identical CPU runs; cuDNN autotuning for fixed CUDA shapes).
* :func:`predict` is the forward pass with the fast-path options (channels_last input, bf16
  autocast); its output is float32, so losses and SSIM always run in float32.
* :func:`train_step_throughput` times full training steps on random data (``ssimrecon bench``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from ssimrecon.device import resolve_device
from ssimrecon.errors import SsimreconError
from ssimrecon.functional.losses import build_loss
from ssimrecon.nn.unet import UNet
from ssimrecon.training.dataset import to_network_input
from ssimrecon.training.settings import resolve_bf16

__all__ = [
    "build_model",
    "crop_batch",
    "autocast",
    "deterministic_algorithms",
    "cudnn_autotune",
    "prepare_batch",
    "predict",
    "train_step_throughput",
]


def build_model(model_cfg: Mapping[str, Any]) -> UNet:
    """``UNet(**model_cfg)`` with unknown keys reported as ``model.<key>``."""
    import inspect

    allowed = set(inspect.signature(UNet.__init__).parameters) - {"self"}
    for key in model_cfg:
        if key not in allowed:
            raise SsimreconError(f"model.{key}: unknown model setting; known: {sorted(allowed)}")
    return UNet(**dict(model_cfg))


def crop_batch(
    x: torch.Tensor, y: torch.Tensor, crop: tuple[int, int], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (per image) crop of input and target to ``crop``, offsets from a generator seeded by
    ``seed``."""
    h, w = x.shape[-2:]
    ch, cw = crop
    if ch > h or cw > w:
        raise SsimreconError(f"training.crop: {list(crop)} is larger than the images ({h}x{w})")
    if (ch, cw) == (h, w):
        return x, y
    g = torch.Generator().manual_seed(seed)
    tops = torch.randint(0, h - ch + 1, (x.shape[0],), generator=g).tolist()
    lefts = torch.randint(0, w - cw + 1, (x.shape[0],), generator=g).tolist()
    corners = list(enumerate(zip(tops, lefts)))
    xs = torch.stack([x[i, :, t : t + ch, left : left + cw] for i, (t, left) in corners])
    ys = torch.stack([y[i, :, t : t + ch, left : left + cw] for i, (t, left) in corners])
    return xs, ys


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
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
def cudnn_autotune(enabled: bool) -> Iterator[None]:
    """cuDNN autotuning for the fixed training shapes (CUDA only), then restore."""
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = old or enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``bf16``, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def prepare_batch(
    batch: dict[str, Any], device: torch.device, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch -> (zero-filled input (B,1,H,W), target (B,1,H,W), data_range (B,)) on ``device``.

    ``mask``: the dataset's sampling mask (:attr:`SliceDataset.mask`, ideally already on
    ``device``); the sampled points are scattered into zero k-space and transformed on ``device``.
    """
    nb = device.type == "cuda"
    samples = batch["samples"].to(device, non_blocking=nb)
    target = batch["target"].to(device, non_blocking=nb)
    data_range = torch.as_tensor(batch["data_range"], dtype=torch.float32).to(
        device, non_blocking=nb
    )
    return to_network_input(samples, mask.to(device)), target, data_range


def predict(
    model: torch.nn.Module, x: torch.Tensor, device: torch.device, bf16: bool, channels_last: bool
) -> torch.Tensor:
    """Forward pass (channels_last input and bf16 autocast as asked); the output is float32."""
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, bf16):
        pred = model(x)
    return pred.float()  # the loss and SSIM run in float32


def train_step_throughput(
    model_cfg: Mapping[str, Any],
    batch_size: int,
    size: int | tuple[int, int],
    fast: bool,
    steps: int = 10,
    device: str | torch.device = "auto",
    warmup: int = 2,
) -> float:
    """Slices/s of full training steps (forward, MSE+0.1 dSSIM, backward, Adam) on random data.

    ``fast=False``: fp32, NCHW; ``fast=True``: channels_last + bf16 autocast where the device
    supports it (``resolve_bf16("auto", device)``: CUDA with bf16, CPUs with AVX512-BF16/AMX), loss
    in fp32.
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    bf16 = fast and resolve_bf16("auto", dev)
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
        pred = predict(model, x, dev, bf16, fast)
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
