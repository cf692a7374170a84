"""training.validation: slice means and the balance of the loss terms (value and gradient)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ssimrecon.functional.losses import build_loss
from ssimrecon.kspace.mask import load_mask
from ssimrecon.nn.unet import UNet
from ssimrecon.training.dataset import SliceDataset, make_loader
from ssimrecon.training.step import predict, prepare_batch
from ssimrecon.training.validation import validate
from tests.helpers.shards import mask_path_of, write_test_shards


def test_validation_reports_the_weighted_terms_ratio_in_value_and_gradient(tmp_path: Path) -> None:
    shards = write_test_shards(tmp_path, n_subjects=2, n_slices=3)
    mask = load_mask(mask_path_of(shards))[0]
    dataset = SliceDataset(shards, mask)
    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=2)  # not residual: far from the targets, both terms large
    loss_fn = build_loss({"mse": 1.0, "dssim": 0.1})
    dev = torch.device("cpu")
    kwargs = dict(device=dev, flat_index=dataset.flat_index, shape=dataset.shape)
    result = validate(
        model,
        make_loader(dataset, 4),
        loss_fn,
        ("mse", "dssim"),
        **kwargs,
        bf16=False,
        channels_last=False,
        stopped=lambda: False,
    )
    assert result is not None and model.training  # left in training mode
    value = result.balance["val_dssim_over_mse_value"]
    assert value == pytest.approx(0.1 * result.terms["dssim"] / result.terms["mse"])

    # the gradient norms w.r.t. the output, summed over batches, by hand
    squares = {"mse": 0.0, "dssim": 0.0}
    model.eval()
    for batch in make_loader(dataset, 4):
        x, target, data_range = prepare_batch(
            batch, dev, **{k: kwargs[k] for k in ("flat_index", "shape")}
        )
        out = predict(model, x, dev, False, False).detach().requires_grad_(True)
        _, parts = loss_fn(out, target, data_range)
        for term, weight in (("mse", 1.0), ("dssim", 0.1)):
            (grad,) = torch.autograd.grad(weight * parts[term], out, retain_graph=True)
            squares[term] += float(grad.double().pow(2).sum())
    expected = np.sqrt(squares["dssim"] / squares["mse"])
    assert result.balance["val_dssim_over_mse_grad"] == pytest.approx(expected, rel=1e-5)

    single = validate(
        model,
        make_loader(dataset, 4),
        build_loss({"mse": 1.0}),
        ("mse",),
        **kwargs,
        bf16=False,
        channels_last=False,
        stopped=lambda: False,
    )
    assert single is not None and single.balance == {}
