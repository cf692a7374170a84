"""Training losses: weighted sums of MSE, dSSIM, L1 and a Sobel edge term.

The paper minimises ||x_ref - G(x_u)||_2^2 + lambda * dssim with dssim = 1 - SSIM (lambda = 0.1),
i.e. ``build_loss({"mse": 1.0, "dssim": 0.1})``.  Its proposed extension, a difference-of-edges
regulariser, is the "edge" term: mean squared difference of Sobel gradient magnitudes sqrt(gx^2 +
gy^2 + eps) (valid region, no padding).  All terms take pred, target (B,1,H,W) and a data range
(float or (B,)), and return scalar means over the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.ssim import ssim
from ssimrecon.functional.weights import check_weights

EDGE_EPS = 1e-8

__all__ = ["TERMS", "CompositeLoss", "build_loss", "sobel_magnitude", "edge_loss", "dssim_loss"]


def dssim_loss(
    pred: torch.Tensor, target: torch.Tensor, data_range: float | torch.Tensor
) -> torch.Tensor:
    """1 - SSIM (batch mean), SSIM as in :mod:`ssimrecon.functional.ssim` (not halved, unlike
    kornia)."""
    return 1.0 - ssim(pred, target, data_range)


def sobel_magnitude(img: torch.Tensor, eps: float = EDGE_EPS) -> torch.Tensor:
    """Sobel gradient magnitude sqrt(gx^2 + gy^2 + eps): (B,C,H,W) -> (B,C,H-2,W-2)."""
    kx = torch.tensor(
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=img.dtype, device=img.device
    )
    weight = torch.stack([kx, kx.t()]).unsqueeze(1)  # (2,1,3,3): d/dx, d/dy
    c = img.shape[1]
    g = F.conv2d(img.reshape(-1, 1, *img.shape[-2:]), weight)
    mag = torch.sqrt(g[:, 0] ** 2 + g[:, 1] ** 2 + eps)
    return mag.reshape(img.shape[0], c, *mag.shape[-2:])


def edge_loss(
    pred: torch.Tensor, target: torch.Tensor, data_range: float | torch.Tensor
) -> torch.Tensor:
    """Mean squared difference of Sobel gradient magnitudes of pred and target."""
    return F.mse_loss(sobel_magnitude(pred), sobel_magnitude(target))


def _mse(
    pred: torch.Tensor, target: torch.Tensor, data_range: float | torch.Tensor
) -> torch.Tensor:
    return F.mse_loss(pred, target)


def _l1(pred: torch.Tensor, target: torch.Tensor, data_range: float | torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, target)


LossTerm = Callable[[torch.Tensor, torch.Tensor, "float | torch.Tensor"], torch.Tensor]

TERMS: dict[str, LossTerm] = {"mse": _mse, "dssim": dssim_loss, "l1": _l1, "edge": edge_loss}


class CompositeLoss(nn.Module):
    """sum_i w_i * term_i(pred, target, data_range); forward returns (total, unweighted parts)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        self.weights = dict(weights)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, data_range: float | torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {name: TERMS[name](pred, target, data_range) for name in self.weights}
        total = sum((w * parts[name] for name, w in self.weights.items()), start=pred.new_zeros(()))
        return total, parts

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.weights.items())


def build_loss(terms: Mapping[str, float]) -> CompositeLoss:
    """The loss of config ``loss: {term: weight}``.

    Terms: "mse", "dssim", "l1", "edge" (another is an error naming ``loss.<term>``); the weights
    follow :func:`~ssimrecon.functional.weights.check_weights` (errors name ``loss.<term>``).
    """
    for name in terms if isinstance(terms, Mapping) else ():
        if name not in TERMS:
            raise SsimreconError(f"loss.{name}: unknown loss term; choose from {sorted(TERMS)}")
    return CompositeLoss(check_weights(terms, "loss"))
