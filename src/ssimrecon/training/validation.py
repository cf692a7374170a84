"""Validation of a training run: slice means of the loss, its terms, MSE, SSIM and PSNR over every
validation slice (uncropped, fixed order), and the balance of the weighted loss terms (value and
gradient norm w.r.t. the network output, relative to mse, or the first term without one)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from math import nan
from typing import Any

import torch

from ssimrecon.functional.metrics import psnr_from_mse
from ssimrecon.functional.ssim import ssim
from ssimrecon.training.records import Validation, balance_columns, balance_reference
from ssimrecon.training.step import BatchPhysics, measured_kspace, predict, prepare_batch

__all__ = ["validate"]


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    batches: Iterable[dict[str, Any]],
    loss_fn: torch.nn.Module,
    terms: tuple[str, ...],
    *,
    device: torch.device,
    flat_index: torch.Tensor,
    shape: tuple[int, int],
    bf16: bool,
    channels_last: bool,
    stopped: Callable[[], bool],
    physics: BatchPhysics | None = None,
) -> Validation | None:
    """The :class:`~ssimrecon.training.records.Validation`: slice means of the composite loss, each
    term, MSE, SSIM and PSNR (per image, data_range: the volume maximum); None as soon as
    ``stopped()`` is true (asked before each batch).  The model is left in training mode.
    ``physics``: the forward model's input (and the measured k-space a data-consistent
    :class:`~ssimrecon.nn.reconstructor.Reconstructor` ``model`` keeps)."""
    model.eval()
    loss_sum, mse_sum, ssim_sum, psnr_sum, n = 0.0, 0.0, 0.0, 0.0, 0
    term_sums = dict.fromkeys(terms, 0.0)
    grad_sq = dict.fromkeys(terms, 0.0)  # squared norms of d(weighted term)/d(output)
    weights = dict(getattr(loss_fn, "weights", {}))
    for batch in batches:
        if stopped():
            model.train()
            return None
        x, target, data_range = prepare_batch(batch, device, flat_index, shape, physics)
        measured = (
            measured_kspace(batch, device, flat_index, shape)
            if physics is not None and physics.measured
            else None
        )
        pred = predict(model, x, device, bf16, channels_last, measured)
        with torch.enable_grad():  # gradients w.r.t. the output only: no backward through the net
            out = pred.detach().requires_grad_(len(terms) > 1)
            total, parts = loss_fn(out, target, data_range)
            if len(terms) > 1:
                for t in terms:
                    (g,) = torch.autograd.grad(weights[t] * parts[t], out, retain_graph=True)
                    grad_sq[t] += float(g.double().pow(2).sum())
        total = total.detach()
        mse = ((pred - target) ** 2).mean(dim=(1, 2, 3))
        loss_sum += float(total) * target.shape[0]
        for t in terms:
            term_sums[t] += float(parts[t]) * target.shape[0]
        mse_sum += float(mse.sum())
        ssim_sum += float(ssim(pred, target, data_range, reduction="none").sum())
        psnr_sum += float(psnr_from_mse(mse, data_range).sum())
        n += target.shape[0]
    model.train()
    balance = {}
    if len(terms) > 1:
        first = balance_reference(terms)
        ratios = []
        for t in (t for t in terms if t != first):
            base = weights[first] * term_sums[first]
            value = weights[t] * term_sums[t] / base if base else nan
            ratios += [value, (grad_sq[t] / grad_sq[first]) ** 0.5 if grad_sq[first] else nan]
        balance = dict(zip(balance_columns(terms), ratios))
    return Validation(
        loss=loss_sum / n,
        terms={t: v / n for t, v in term_sums.items()},
        mse=mse_sum / n,  # per-image MSE; equals the mse term's mean up to rounding
        ssim=ssim_sum / n,
        psnr=psnr_sum / n,
        balance=balance,
    )
