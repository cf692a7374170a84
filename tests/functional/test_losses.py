"""Composite loss: composition, each term's definition, validation errors and gradient flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter, sobel
from skimage import data

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.losses import build_loss, sobel_magnitude
from ssimrecon.functional.ssim import ssim


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Reference (2,1,64,64) real-image crops in [0,1] and a blurred, noisy prediction."""
    img = data.camera().astype(np.float64) / 255.0
    ref = np.stack([img[100:164, 200:264], img[300:364, 50:114]])
    rng = np.random.default_rng(0)
    pred = gaussian_filter(ref, (0, 1.5, 1.5)) + 0.01 * rng.standard_normal(ref.shape)
    return torch.from_numpy(pred)[:, None], torch.from_numpy(ref)[:, None]


def test_total_is_weighted_sum_of_unweighted_parts() -> None:
    pred, target = _pair()
    weights = {"mse": 1.0, "dssim": 0.1, "l1": 0.5, "edge": 2.0}
    total, parts = build_loss(weights)(pred, target, 1.0)
    assert set(parts) == set(weights)
    assert total.item() == pytest.approx(
        sum(w * parts[k].item() for k, w in weights.items()), rel=1e-12
    )
    assert all(p.item() > 0 for p in parts.values())


def test_each_term_definition() -> None:
    pred, target = _pair()
    total, parts = build_loss({"mse": 1.0})(pred, target, 1.0)
    assert total.item() == pytest.approx(F.mse_loss(pred, target).item(), rel=1e-12)
    total, parts = build_loss({"dssim": 1.0})(
        pred, target, torch.tensor([1.0, 0.9], dtype=torch.float64)
    )
    expected = 1 - ssim(pred, target, torch.tensor([1.0, 0.9], dtype=torch.float64))
    assert parts["dssim"].item() == pytest.approx(expected.item(), rel=1e-12)
    _, parts = build_loss({"l1": 1.0})(pred, target, 1.0)
    assert parts["l1"].item() == pytest.approx((pred - target).abs().mean().item(), rel=1e-12)


def test_sobel_magnitude_matches_scipy() -> None:
    _, target = _pair()
    mag = sobel_magnitude(target, eps=0.0)
    img = target[0, 0].numpy()
    expected = np.hypot(sobel(img, axis=1), sobel(img, axis=0))[1:-1, 1:-1]
    assert mag.shape == (2, 1, 62, 62)
    np.testing.assert_allclose(mag[0, 0].numpy(), expected, rtol=1e-10, atol=1e-12)


def test_edge_zero_for_identical_positive_for_blurred() -> None:
    pred, target = _pair()
    loss = build_loss({"edge": 1.0})
    assert loss(target.clone(), target, 1.0)[0].item() == 0.0
    blurred = torch.from_numpy(gaussian_filter(target.numpy(), (0, 0, 2, 2)))
    assert loss(blurred, target, 1.0)[0].item() > 1e-3


def test_gradients_flow_to_prediction_and_reduce_loss() -> None:
    pred, target = _pair()
    loss = build_loss({"mse": 1.0, "dssim": 0.1, "edge": 0.1, "l1": 0.1})
    x = pred.float().clone().requires_grad_(True)
    tgt = target.float()
    total, parts = loss(x, tgt, 1.0)
    total.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # each part has its own nonzero gradient
    for name in parts:
        (g,) = torch.autograd.grad(build_loss({name: 1.0})(x, tgt, 1.0)[0], x)
        assert g.abs().sum() > 0, name
    # a small step against the gradient lowers the loss
    with torch.no_grad():
        stepped = x - 1e-2 * x.grad / x.grad.abs().max()
    assert loss(stepped, tgt, 1.0)[0].item() < total.item()


@pytest.mark.parametrize(
    "terms, match",
    [
        ({"ssim": 1.0}, r"loss\.ssim"),
        ({"mse": -1.0}, r"loss\.mse"),
        ({"dssim": "0.1"}, r"loss\.dssim"),
        ({"edge": float("nan")}, r"loss\.edge"),
        ({"mse": True}, r"loss\.mse"),
        ({}, "non-empty"),
        ({"mse": 0.0}, "positive"),
    ],
)
def test_bad_config(terms: dict, match: str) -> None:
    with pytest.raises(SsimreconError, match=match):
        build_loss(terms)
