"""The paper's U-Net (Ronneberger et al. 2015 variant): 4 max-pool stages, 3 conv layers per stage,
64 channels in the first stage, doubled after every pooling (64 -> 1024 at the bottom).

Layout for ``depth`` D and ``convs_per_stage`` n, channels c_l = base * 2**l:
encoder levels l = 0..D-1: n x [conv3x3 -> norm -> ReLU] then MaxPool2d(2); bottom level D: the same
n convs; decoder levels l = D-1..0: ConvTranspose2d(c_{l+1} -> c_l, k=2, s=2), concatenation with the
skip (2 c_l channels), n x [conv3x3 -> norm -> ReLU]; a final 1x1 conv to ``out_channels``.
``residual=True`` returns input + net(input).  Inputs are (B, in_channels, H, W) with H and W divisible
by 2**depth.

Normalisation defaults to InstanceNorm2d(affine=True): it normalises each image on its own, so training
and inference behave the same at any batch size (batch 1 at inference, small batches on a GPU),
as in fastMRI's U-Net baseline.  "batch" (BatchNorm2d) and "none" are available.  Convolutions
followed by a normalisation have no bias (the normalisation's mean subtraction would cancel it).
"""

from __future__ import annotations

import torch
from torch import nn

from ssimrecon.errors import SsimreconError

NORMS = ("instance", "batch", "none")

__all__ = ["UNet", "count_parameters", "NORMS"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def _stage(in_ch: int, out_ch: int, convs: int, norm: str) -> nn.Sequential:
    """convs x [conv3x3 (padding 1) -> norm -> ReLU]; the first maps in_ch -> out_ch."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, kernel_size=3, padding=1, bias=norm == "none"),
            _norm(norm, out_ch),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


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
    ) -> None:
        super().__init__()
        for key, value in (("in_channels", in_channels), ("out_channels", out_channels),
                           ("base_channels", base_channels), ("depth", depth), ("convs_per_stage", convs_per_stage)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SsimreconError(f"model.{key}: must be a positive integer, got {value!r}")
        if norm not in NORMS:
            raise SsimreconError(f"model.norm: must be one of {list(NORMS)}, got {norm!r}")
        if residual and in_channels != out_channels:
            raise SsimreconError(
                f"model.residual: needs in_channels == out_channels, got {in_channels} and {out_channels}"
            )
        self.model_config: dict[str, int | bool | str] = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "base_channels": base_channels,
            "depth": depth,
            "convs_per_stage": convs_per_stage,
            "residual": bool(residual),
            "norm": norm,
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
            self.up.append(nn.ConvTranspose2d(ch[level + 1], ch[level], kernel_size=2, stride=2))
            self.up_convs.append(_stage(2 * ch[level], ch[level], convs_per_stage, norm))
        self.head = nn.Conv2d(ch[0], out_channels, kernel_size=1)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise SsimreconError unless x is (B, in_channels, H, W) with H, W divisible by 2**depth."""
        factor = 2**self.depth
        if x.dim() != 4 or x.shape[1] != self.model_config["in_channels"]:
            raise SsimreconError(
                f"UNet: expected input (B, {self.model_config['in_channels']}, H, W), got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h % factor or w % factor:
            raise SsimreconError(
                f"UNet: input size {h}x{w} is not divisible by 2**depth = {factor} (depth {self.depth}); "
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
