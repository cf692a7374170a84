"""The paper's U-Net (Ronneberger et al. 2015 variant): 4 max-pool stages, 3 conv layers per stage,
64 channels in the first stage, doubled after every pooling (64 -> 1024 at the bottom).

Layout for ``depth`` D and ``convs_per_stage`` n, channels c_l = base * 2**l: encoder levels l =
0..D-1: n x [conv3x3 -> norm -> ReLU] then MaxPool2d(2); bottom level D: the same n convs; decoder
levels l = D-1..0: an upsampling c_{l+1} -> c_l (``upsample``, below), concatenation with the
skip (2 c_l channels), n x [conv3x3 -> norm -> ReLU]; a final 1x1 conv to ``out_channels``.
``residual=True`` returns input + net(input), and the final 1x1 conv starts at zero (weight and
bias), so the initialised network is the identity on its input (the zero-filled image) and
training starts from the zero-filled reconstruction instead of undoing a random correction.
Inputs are
(B, in_channels, H, W) with H and W divisible by 2**depth.

``upsample``: ``"transpose"`` is ConvTranspose2d(k=2, s=2), the original U-Net's up-convolution (the
paper's config: the abstract says only "a variation of the U-Net"); its kernel overlaps unevenly and
is the textbook source of period-2 checkerboard artefacts (Odena et al., Distill 2016).
``"resize_conv"`` is a nearest-neighbour x2 resize followed by a 3x3 conv (padding 1), which has no
such period-2 pattern (``tests/nn/test_unet.py`` measures both).

Normalisation defaults to instance norm with affine weight and bias (:class:`InstanceNorm2d`, the
maths and state_dict keys of ``nn.InstanceNorm2d(affine=True)``): it normalises each image on its
own, so training and inference behave the same at any batch size (batch 1 at inference, small
batches on a GPU), as in fastMRI's U-Net baseline.  The project's own implementation keeps the
input's dtype (bf16 under autocast) and memory format (channels_last): ``nn.InstanceNorm2d`` on CPU
casts bf16 -> fp32 and copies channels_last -> NCHW around every normalisation, 28% of a CPU
training step (docs/performance.md). "batch" (BatchNorm2d) and "none" are available.  Convolutions
followed by a normalisation have no bias (the normalisation's mean subtraction would cancel it).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from ssimrecon.errors import SsimreconError

NORMS = ("instance", "batch", "none")
#: decoder upsampling (``model.upsample``): see the module docstring
UPSAMPLES = ("transpose", "resize_conv")

__all__ = [
    "UNet",
    "InstanceNorm2d",
    "count_parameters",
    "NORMS",
    "UPSAMPLES",
    "set_instance_norm_kernel",
]

#: instance-norm kernels: "project" (own kernel for bf16/channels_last, torch's for fp32 NCHW) or
#: "torch" (``F.instance_norm`` always); same maths and weights (``training.instance_norm``)
INSTANCE_NORM_KERNELS = ("project", "torch")


def _stats_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _autocast_on(device: torch.device) -> bool:
    return device.type in ("cpu", "cuda") and torch.is_autocast_enabled(device.type)


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off inside the norm (it would cast whole activations for reductions such as
    ``sum``)."""
    if _autocast_on(device):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _sum_hw(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Sum of (B, C, H, W) over H, W accumulated in ``dtype`` -> (B, C, 1, 1), reducing along the
    tensor's contiguous layout (a channels_last tensor is viewed as (B, H*W, C): about 2x faster on
    CPU)."""
    b, c, h, w = t.shape
    if c > 1 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        out = t.permute(0, 2, 3, 1).reshape(b, h * w, c).sum(dim=1, dtype=dtype)
    else:
        out = t.reshape(b, c, h * w).sum(dim=2, dtype=dtype)
    return out.view(b, c, 1, 1)


class _InstanceNormFn(torch.autograd.Function):
    """Instance norm of (B, C, H, W) with affine (C,) weight and bias, in the input's dtype and
    layout.

    mean = sum(x) / n accumulated in fp32 (fp64 for fp64 input); the input is centred by the mean
    rounded to its dtype, ``xc = x - mean_q``, and var = sum(xc**2) / n - (mean - mean_q)**2 (exact
    identity, no cancellation).  Output ``xc * scale + shift`` with per-(B, C) fp32 coefficients
    cast to the input's dtype.  ``xc`` is saved; the analytic backward needs two fp32-accumulated
    reductions (sum dy, sum dy * xc) and one ``dy * a + xc * b + c`` pass.  Every elementwise op
    keeps the memory format.
    """

    @staticmethod
    def forward(
        ctx,
        x: torch.Tensor,
        weight: torch.Tensor,  # type: ignore[override]
        bias: torch.Tensor,
        eps: float,
    ) -> torch.Tensor:
        sd, dt = _stats_dtype(x.dtype), x.dtype
        n = x.shape[2] * x.shape[3]
        with _no_autocast(x.device):
            mean = _sum_hw(x, sd) / n
            mean_q = mean.to(dt)
            xc = x - mean_q
            delta = mean - mean_q.to(sd)  # mean - mean_q: the centring's rounding
            var = (_sum_hw(xc * xc, sd) / n - delta * delta).clamp_min(0)
            rstd = torch.rsqrt(var + eps)
            scale = weight.to(sd).view(1, -1, 1, 1) * rstd
            shift = bias.to(sd).view(1, -1, 1, 1) - delta * scale
            y = torch.addcmul(shift.to(dt), xc, scale.to(dt))
        ctx.save_for_backward(xc, weight, delta, rstd)
        ctx.bias_dtype = bias.dtype
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # type: ignore[override]
        xc, weight, delta, rstd = ctx.saved_tensors
        sd, dt = delta.dtype, xc.dtype
        n = xc.shape[2] * xc.shape[3]
        with _no_autocast(xc.device):
            dy = dy.to(dt)
            s1 = _sum_hw(dy, sd)
            ds = _sum_hw(dy * xc, sd) - delta * s1  # sum dy * (x - mean)
            dweight = (ds * rstd).sum(dim=0).view(-1).to(weight.dtype)
            dbias = s1.sum(dim=0).view(-1).to(ctx.bias_dtype)
            dx = None
            if ctx.needs_input_grad[0]:
                # dx = a * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (xc - delta) * rstd
                a = weight.to(sd).view(1, -1, 1, 1) * rstd
                b = -a * rstd * rstd * ds / n
                c = -a * s1 / n - b * delta
                dx = torch.addcmul(c.to(dt), xc, b.to(dt)).addcmul_(dy, a.to(dt))
        return dx, dweight, dbias, None


class InstanceNorm2d(nn.Module):
    """``nn.InstanceNorm2d(num_features, eps, affine=True, track_running_stats=False)`` - same maths
    (per sample and channel mean and biased variance over H, W) and the same state_dict keys
    (``weight``, ``bias``) - computed in the input's dtype and memory format (see the module
    docstring)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.kernel = "project"  # see INSTANCE_NORM_KERNELS / set_instance_norm_kernel
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"InstanceNorm2d({self.num_features}): expected (B, {self.num_features}, H, W), "
                f"got {tuple(x.shape)}"
            )
        full_precision = x.dtype in (torch.float32, torch.float64) and not _autocast_on(x.device)
        if self.kernel == "torch" or (full_precision and x.is_contiguous()):
            # fp32 NCHW: torch's kernel is the faster one there (CPU: 20 vs 28 ms
            # fwd+bwd at 4x64x256x256)
            return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)
        return _InstanceNormFn.apply(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine=True"


def set_instance_norm_kernel(model: nn.Module, kernel: str) -> None:
    """Use ``kernel`` (:data:`INSTANCE_NORM_KERNELS`) in every :class:`InstanceNorm2d` of
    ``model``; weights and results (up to rounding) are unchanged."""
    if kernel not in INSTANCE_NORM_KERNELS:
        raise SsimreconError(
            f"training.instance_norm: must be one of {list(INSTANCE_NORM_KERNELS)}, got {kernel!r}"
        )
    for module in model.modules():
        if isinstance(module, InstanceNorm2d):
            module.kernel = kernel


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return InstanceNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def _stage(in_ch: int, out_ch: int, convs: int, norm: str) -> nn.Sequential:
    """convs x [conv3x3 (padding 1) -> norm -> ReLU]; the first maps in_ch -> out_ch."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(
                in_ch if i == 0 else out_ch, out_ch, kernel_size=3, padding=1, bias=norm == "none"
            ),
            _norm(norm, out_ch),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def _upsample(kind: str, in_ch: int, out_ch: int) -> nn.Module:
    """x2 upsampling (B, in_ch, h, w) -> (B, out_ch, 2h, 2w) of ``kind`` (:data:`UPSAMPLES`)."""
    if kind == "transpose":
        return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
    )


class UNet(nn.Module):
    """U-Net mapping (B, in_channels, H, W) -> (B, out_channels, H, W); see the module docstring."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        depth: int = 4,
        convs_per_stage: int = 3,
        residual: bool = False,
        norm: str = "instance",
        upsample: str = "transpose",
    ) -> None:
        """The ``model`` config is checked once, before any job, by :mod:`ssimrecon.config.check`
        (schema and ``preprocessing.image_size`` vs ``depth``); these guards only stop values no
        network could be built from, for library callers."""
        super().__init__()
        for key, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("base_channels", base_channels),
            ("depth", depth),
            ("convs_per_stage", convs_per_stage),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SsimreconError(f"model.{key}: must be a positive integer, got {value!r}")
        if norm not in NORMS:
            raise SsimreconError(f"model.norm: must be one of {list(NORMS)}, got {norm!r}")
        if upsample not in UPSAMPLES:
            raise SsimreconError(
                f"model.upsample: must be one of {list(UPSAMPLES)}, got {upsample!r}"
            )
        if residual and in_channels != out_channels:
            raise SsimreconError(
                f"model.residual: needs in_channels == out_channels, got {in_channels} and "
                f"{out_channels}"
            )
        self.model_config: dict[str, int | bool | str] = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "base_channels": base_channels,
            "depth": depth,
            "convs_per_stage": convs_per_stage,
            "residual": bool(residual),
            "norm": norm,
            "upsample": upsample,
        }
        self.depth = depth
        self.residual = bool(residual)
        ch = [base_channels * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        prev = in_channels
        for level in range(depth):
            self.down.append(_stage(prev, ch[level], convs_per_stage, norm))
            prev = ch[level]
        self.pool = nn.MaxPool2d(2)
        self.bottom = _stage(ch[depth - 1], ch[depth], convs_per_stage, norm)
        self.up = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for level in reversed(range(depth)):
            self.up.append(_upsample(upsample, ch[level + 1], ch[level]))
            self.up_convs.append(_stage(2 * ch[level], ch[level], convs_per_stage, norm))
        self.head = nn.Conv2d(ch[0], out_channels, kernel_size=1)
        if self.residual:  # start as the identity on the input: the correction is zero
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise SsimreconError unless x is (B, in_channels, H, W) with H, W divisible by
        2**depth."""
        factor = 2**self.depth
        if x.dim() != 4 or x.shape[1] != self.model_config["in_channels"]:
            raise SsimreconError(
                f"UNet: expected input (B, {self.model_config['in_channels']}, H, W), got "
                f"{tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h % factor or w % factor:
            raise SsimreconError(
                f"UNet: input size {h}x{w} is not divisible by 2**depth = {factor} (depth "
                f"{self.depth}); "
                f"crop or pad images to a multiple of {factor}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        skips = []
        h = x
        for stage in self.down:
            h = stage(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for up, stage in zip(self.up, self.up_convs):
            h = stage(torch.cat([skips.pop(), up(h)], dim=1))
        out = self.head(h)
        return x + out if self.residual else out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as BatchNorm running stats excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
