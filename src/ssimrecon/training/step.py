"""One training step's computation: the model, a batch on the device, the forward pass, a throughput
probe.

* :func:`build_model` builds the U-Net from the ``model:`` config (unknown keys named
  ``model.<key>``; ``model.data_consistency`` belongs to the
  :class:`~ssimrecon.nn.reconstructor.Reconstructor` around it, :func:`unet_settings`), with the
  input and output channels of the forward model.
* :func:`prepare_batch` moves a loader batch (sampled k-space points) to the device and forms the
  zero-filled network input there (:func:`~ssimrecon.nn.reconstructor.network_input` of the
  forward model); :func:`measured_kspace` the measured k-space data consistency needs;
  :func:`crop_batch` draws the optional random crops from a generator seeded per batch.
* :func:`deterministic_algorithms` and :func:`cuda_fast_math` set torch's global algorithm choice
  for the duration of a run (bit-identical CPU runs; on CUDA cuDNN autotuning for the fixed shapes
  and TF32 for the fp32 matmuls/convolutions left outside bf16 autocast).
* :func:`training_model` builds the U-Net on the device with the run's memory format and
  instance-norm kernel; :func:`make_optimizer` its Adam (fused on CUDA); :func:`compiled` the
  optional ``torch.compile`` wrapper.
* :func:`predict` is the forward pass with the fast-path options (channels_last input, bf16
  autocast); its output is float32, so losses and SSIM always run in float32.
* :func:`train_step` is THE optimiser step (the Trainer and ``ssimrecon_bench.gpu`` both call it):
  it never reads a device value on the host, so a CUDA step queues without waiting.
* :func:`train_step_throughput` times :func:`train_step` on random data (``ssimrecon bench``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from ssimrecon.device import resolve_device
from ssimrecon.errors import SsimreconError
from ssimrecon.functional.losses import build_loss
from ssimrecon.kspace.forward import network_channels
from ssimrecon.nn.reconstructor import network_input
from ssimrecon.nn.unet import UNet, set_instance_norm_kernel
from ssimrecon.training.bf16 import resolve_bf16
from ssimrecon.training.dataset import scatter_samples

__all__ = [
    "BatchPhysics",
    "RECONSTRUCTOR_KEYS",
    "unet_settings",
    "build_model",
    "measured_kspace",
    "crop_batch",
    "autocast",
    "deterministic_algorithms",
    "cuda_fast_math",
    "training_model",
    "make_optimizer",
    "compiled",
    "prepare_batch",
    "predict",
    "train_step",
    "train_step_throughput",
]


#: ``model:`` keys of the Reconstructor around the U-Net, not of the U-Net
RECONSTRUCTOR_KEYS = ("data_consistency",)


@dataclasses.dataclass(frozen=True)
class BatchPhysics:
    """How a batch's sampled points become the network's input: ``forward_model``, the
    multicoil ``sensitivities`` (C, H, W) complex (on the device) and whether the network needs
    the ``measured`` k-space (data consistency)."""

    forward_model: str = "magnitude"
    sensitivities: torch.Tensor | None = None
    measured: bool = False


def unet_settings(model_cfg: Mapping[str, Any], forward_model: str = "magnitude") -> dict:
    """The U-Net's keyword arguments: ``model_cfg`` without :data:`RECONSTRUCTOR_KEYS`, with
    the forward model's input and output channels (1, or 2 for complex images)."""
    channels = network_channels(forward_model)
    unet = {k: v for k, v in model_cfg.items() if k not in RECONSTRUCTOR_KEYS}
    if channels != 1:
        unet.update(in_channels=channels, out_channels=channels)
    return unet


def build_model(model_cfg: Mapping[str, Any], forward_model: str = "magnitude") -> UNet:
    """``UNet(**unet_settings(model_cfg, forward_model))`` with unknown keys reported as
    ``model.<key>``."""
    import inspect

    allowed = set(inspect.signature(UNet.__init__).parameters) - {"self"}
    for key in model_cfg:
        if key not in allowed and key not in RECONSTRUCTOR_KEYS:
            raise SsimreconError(f"model.{key}: unknown model setting; known: {sorted(allowed)}")
    return UNet(**unet_settings(model_cfg, forward_model))


#: the crops' foreground: target pixels above this fraction of the volume's data_range (the head
#: mask's threshold, docs/definitions.md)
FOREGROUND_FRACTION = 0.1


def crop_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    crop: tuple[int, int],
    seed: int,
    first: int = 0,
    of: int | None = None,
    *,
    focus: str = "uniform",
    data_range: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (per image) crop of input (B, C, H, W) and target (B, 1, H, W) to ``crop`` (checked
    by :meth:`~ssimrecon.config.stages.TrainSettings.check_crop`), offsets from a generator seeded
    by ``seed``.  A distributed rank holding images ``first..`` of a global batch of ``of`` images
    uses those images' offsets, so crops do not depend on the number of processes.

    ``focus`` (``training.crop_focus``): "uniform" draws the corner uniformly; "foreground" centres
    the crop on a uniformly drawn target pixel above ``FOREGROUND_FRACTION * data_range`` (B,)
    (the whole image where none is), clamped into the image, so crops hold anatomy rather than
    background.  Both draw from the same generator stream, one value per image of the global
    batch."""
    h, w = x.shape[-2:]
    ch, cw = crop
    if (ch, cw) == (h, w):
        return x, y
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0] if of is None else of  # offsets drawn for the whole (global) batch
    if focus == "foreground":
        if data_range is None:
            raise SsimreconError("training.crop_focus: 'foreground' needs the batch's data_range")
        tops, lefts = _foreground_corners(y, crop, g, n, first, data_range)
    elif focus == "uniform":
        tops = torch.randint(0, h - ch + 1, (n,), generator=g)[first : first + x.shape[0]].tolist()
        lefts = torch.randint(0, w - cw + 1, (n,), generator=g)[first : first + x.shape[0]].tolist()
    else:
        raise SsimreconError(f"training.crop_focus: must be uniform or foreground, got {focus!r}")
    corners = list(enumerate(zip(tops, lefts)))
    xs = torch.stack([x[i, :, t : t + ch, left : left + cw] for i, (t, left) in corners])
    ys = torch.stack([y[i, :, t : t + ch, left : left + cw] for i, (t, left) in corners])
    return xs, ys


def _foreground_corners(
    y: torch.Tensor,
    crop: tuple[int, int],
    g: torch.Generator,
    n: int,
    first: int,
    data_range: torch.Tensor,
) -> tuple[list[int], list[int]]:
    """Corners (tops, lefts) of crops centred on a drawn foreground pixel of each target (B, 1, H,
    W); one uniform draw per image of the global batch of ``n`` (this rank's from ``first``).
    Reads the chosen pixels on the host (one device sync per batch)."""
    h, w = y.shape[-2:]
    ch, cw = crop
    draws = torch.rand(n, generator=g, dtype=torch.float64)[first : first + y.shape[0]]
    threshold = FOREGROUND_FRACTION * data_range.to(y.device, y.dtype).reshape(-1, 1)
    fg = (y.reshape(y.shape[0], -1) > threshold).to(torch.float64)
    fg[fg.sum(dim=1) == 0] = 1.0  # no foreground: every pixel may centre the crop
    cumulative = fg.cumsum(dim=1)
    wanted = draws.to(y.device).reshape(-1, 1) * cumulative[:, -1:]
    flat = torch.searchsorted(cumulative, wanted, right=True).clamp_(max=h * w - 1).ravel()
    tops, lefts = [], []
    for index in flat.tolist():
        row, col = divmod(int(index), w)
        tops.append(min(max(row - ch // 2, 0), h - ch))
        lefts.append(min(max(col - cw // 2, 0), w - cw))
    return tops, lefts


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
def cuda_fast_math(enabled: bool) -> Iterator[None]:
    """On CUDA (``enabled``): cuDNN autotuning for the fixed training shapes and TF32 for fp32
    matmuls and convolutions (``set_float32_matmul_precision("high")``, ``cudnn.allow_tf32``);
    all restored afterwards.  A no-op when not ``enabled`` (CPU runs stay bit-identical)."""
    if not enabled:
        yield
        return
    cudnn = torch.backends.cudnn
    old = (cudnn.benchmark, cudnn.allow_tf32, torch.get_float32_matmul_precision())
    cudnn.benchmark, cudnn.allow_tf32 = True, True
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.allow_tf32 = old[0], old[1]
        torch.set_float32_matmul_precision(old[2])


def training_model(
    model_cfg: Mapping[str, Any],
    device: torch.device,
    channels_last: bool,
    instance_norm: str,
    forward_model: str = "magnitude",
) -> UNet:
    """The U-Net of ``forward_model`` on ``device`` (channels_last weights if asked) with the
    ``instance_norm`` kernel ('project' or 'torch'); seed torch before calling for reproducible
    weights."""
    model = build_model(model_cfg, forward_model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    set_instance_norm_kernel(model, instance_norm)
    return model


def make_optimizer(model: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam at ``lr``; the fused (one kernel per step) implementation on CUDA."""
    fused = device.type == "cuda"
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)


def compiled(model: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile(model)`` when ``enabled`` (``training.compile``), else ``model``.  Weights
    stay shared with ``model``; save and load the uncompiled one."""
    return torch.compile(model) if enabled else model


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``bf16``, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def prepare_batch(
    batch: dict[str, Any],
    device: torch.device,
    flat_index: torch.Tensor,
    shape: tuple[int, int],
    physics: BatchPhysics | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch -> (zero-filled input (B,1,H,W) (complex and multicoil data: (B,2,H,W), ``physics``),
    target (B,1,H,W), data_range (B,)) on ``device``, all divided by each volume's
    ``input_scale`` (from its zero-filled magnitude alone,
    :func:`~ssimrecon.kspace.preprocess.input_scale`): the network sees no reference statistic and
    the loss is on that normalised axis.

    ``flat_index``/``shape``: the dataset's sampled positions in the (H, W) plane
    (:attr:`SliceDataset.flat_index`, ideally already on ``device``); the sampled points are
    scattered into zero k-space and transformed on ``device``.  Copies are asynchronous from the
    loader's pinned memory on CUDA; nothing is read back.
    """
    nb = device.type == "cuda"
    samples = batch["samples"].to(device, non_blocking=nb)
    target = batch["target"].to(device, non_blocking=nb)
    data_range = torch.as_tensor(batch["data_range"], dtype=torch.float32).to(
        device, non_blocking=nb
    )
    scale = torch.as_tensor(batch["input_scale"], dtype=torch.float32).to(device, non_blocking=nb)
    per_image = scale.view(-1, 1, 1, 1)
    physics = physics or BatchPhysics()
    kspace = scatter_samples(samples, flat_index, shape)
    maps = physics.sensitivities
    if "sensitivities" in batch:  # one per slice (measured k-space): (B, C, H, W, 2) real/imag
        maps = torch.view_as_complex(batch["sensitivities"].to(device, non_blocking=nb).float())
    x = network_input(kspace, physics.forward_model, maps) / per_image
    return x, target / per_image, data_range / scale


def measured_kspace(
    batch: dict[str, Any], device: torch.device, flat_index: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """The batch's undersampled k-space (B, [C,] H, W) complex64 on ``device``, divided by each
    volume's ``input_scale`` like :func:`prepare_batch`'s input: what data consistency keeps."""
    nb = device.type == "cuda"
    samples = batch["samples"].to(device, non_blocking=nb)
    scale = torch.as_tensor(batch["input_scale"], dtype=torch.float32).to(device, non_blocking=nb)
    kspace = scatter_samples(samples, flat_index, shape)
    return kspace / scale.view(-1, *([1] * (kspace.dim() - 1)))


def predict(
    model: torch.nn.Module,
    x: torch.Tensor,
    device: torch.device,
    bf16: bool,
    channels_last: bool,
    measured: torch.Tensor | None = None,
) -> torch.Tensor:
    """Forward pass (channels_last input and bf16 autocast as asked); the output is float32.
    ``measured``: the k-space a data-consistent :class:`~ssimrecon.nn.reconstructor.Reconstructor`
    keeps (None: the model is called with ``x`` alone)."""
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, bf16):
        pred = model(x) if measured is None else model(x, measured)
    return pred.float()  # the loss and SSIM run in float32


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: torch.nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    terms: tuple[str, ...],
    *,
    bf16: bool,
    channels_last: bool,
    loss_scale: float = 1.0,
    measured: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on ``batch`` = (input, target, data_range) already on the device
    (``measured``: the k-space data consistency keeps, :func:`predict`).

    The gradient is that of ``loss_scale`` x the composite loss (a distributed rank with a share
    of the global batch other than 1/N rescales here).  Returns the detached composite loss (a 0-d
    tensor) and the loss ``terms`` stacked in that order, both still on the device: nothing here
    waits for the device.
    """
    x, target, data_range = batch
    pred = predict(model, x, x.device, bf16, channels_last, measured)
    total, parts = loss_fn(pred, target, data_range)
    optimizer.zero_grad(set_to_none=True)
    (total * loss_scale if loss_scale != 1.0 else total).backward()
    optimizer.step()
    stacked = torch.stack([parts[t].detach() for t in terms]) if terms else total.new_zeros(0)
    return total.detach(), stacked


def train_step_throughput(
    model_cfg: Mapping[str, Any],
    batch_size: int,
    size: int | tuple[int, int],
    fast: bool,
    steps: int = 10,
    device: str | torch.device = "auto",
    warmup: int = 2,
    *,
    compile_model: bool = False,
    instance_norm: str = "project",
) -> float:
    """Slices/s of :func:`train_step` (forward, MSE+0.1 dSSIM, backward, Adam) on random data.

    ``fast=False``: fp32, NCHW; ``fast=True``: channels_last + bf16 autocast where the device
    supports it (``resolve_bf16("auto", device)``: CUDA with bf16, CPUs with AVX512-BF16/AMX), loss
    in fp32.  ``compile_model``: ``torch.compile`` (compiled during the warm-up);
    ``instance_norm``: the kernel.  CUDA runs use :func:`cuda_fast_math` and are synchronised
    before each clock reading.
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    bf16 = fast and resolve_bf16("auto", dev)
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, 1, h, w, generator=g).to(dev)
    y = torch.rand(batch_size, 1, h, w, generator=g).to(dev)
    data_range = torch.ones(batch_size, device=dev)
    torch.manual_seed(0)
    with cuda_fast_math(dev.type == "cuda"):
        model = training_model(model_cfg, dev, fast, instance_norm)
        opt = make_optimizer(model, 1e-4, dev)
        net = compiled(model, compile_model)
        loss_fn = build_loss({"mse": 1.0, "dssim": 0.1}).to(dev)

        def step() -> None:
            train_step(net, opt, loss_fn, (x, y, data_range), (), bf16=bf16, channels_last=fast)

        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        for _ in range(warmup):
            step()
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        return steps * batch_size / (time.perf_counter() - t0)
