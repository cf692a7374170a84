"""Untrained tiny model bundles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssimrecon.kspace.preprocess import Preprocessing
from ssimrecon.nn.bundle import save_model_bundle
from ssimrecon.nn.unet import UNet
from tests.helpers.shards import PREP


def make_test_model(
    path: Path,
    mask: np.ndarray,
    *,
    prep: Preprocessing = PREP,
    seed: int = 0,
    min_signal_fraction: float | None = None,
    grid: dict | None = None,
) -> UNet:
    """Save an untrained tiny residual U-Net bundle (base 4, depth 2) for ``mask``; ``grid``: the
    bundle's training grid (None: none recorded, as in older bundles).  A residual U-Net starts as
    the identity (zero head); this one's head is drawn at random (seeded), so that its output
    differs from its input as a trained network's does."""
    torch.manual_seed(seed)
    model = UNet(base_channels=4, depth=2, convs_per_stage=1, residual=True).eval()
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.5)
        model.head.bias.normal_(0.0, 0.05)
    extra: dict = {"network": path.stem}
    if min_signal_fraction is not None:
        extra["training"] = {"min_signal_fraction": min_signal_fraction}
    save_model_bundle(
        path,
        model=model,
        preprocessing=prep.to_dict(),
        mask=mask,
        mask_meta={"seed": 0, "acceleration": 4.0},
        extra=extra,
        grid=grid,
    )
    return model


def make_complex_test_model(
    path: Path,
    mask: np.ndarray,
    *,
    prep: Preprocessing,
    data_consistency: bool = False,
    network: str | None = None,
) -> UNet:
    """Save an untrained tiny residual U-Net bundle with 2 channels in and out (real, imaginary: the
    complex and multicoil forward models) for ``mask`` and ``prep``; its head is drawn at random
    (seed 0), so that its output differs from its input."""
    torch.manual_seed(0)
    unet = UNet(2, 2, base_channels=4, depth=2, convs_per_stage=1, residual=True)
    with torch.no_grad():
        unet.head.weight.normal_(0.0, 0.1)
    save_model_bundle(
        path,
        model=unet,
        preprocessing=prep.to_dict(),
        mask=mask,
        mask_meta={"seed": 0, "acceleration": 4.0},
        extra={"network": network or path.stem},
        grid=None,
        data_consistency=data_consistency,
    )
    return unet
