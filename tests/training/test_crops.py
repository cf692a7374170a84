"""Random training crops: uniform corners and foreground-centred crops (training.crop_focus)."""

from __future__ import annotations

import pytest
import torch

from ssimrecon.errors import SsimreconError
from ssimrecon.training.step import crop_batch


def _batch(n: int = 16, size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets (n, 1, size, size) that are zero but for a bright 6x6 patch at a different place
    in each image; input = target + 1 (to tell input from target crops)."""
    y = torch.zeros(n, 1, size, size)
    g = torch.Generator().manual_seed(1)
    for i in range(n):
        r, c = torch.randint(0, size - 6, (2,), generator=g).tolist()
        y[i, 0, r : r + 6, c : c + 6] = 1.0
    return y + 1.0, y, torch.ones(n)


def test_foreground_crops_always_hold_the_bright_patch_and_uniform_crops_often_miss_it() -> None:
    x, y, data_range = _batch()
    fg_hits, uniform_hits = 0, 0
    for seed in range(5):
        xs, ys = crop_batch(x, y, (16, 16), seed, focus="foreground", data_range=data_range)
        assert xs.shape == ys.shape == (16, 1, 16, 16)
        assert torch.equal(xs, ys + 1.0)  # input and target cut at the same corner
        fg_hits += int((ys.amax(dim=(1, 2, 3)) > 0.5).sum())
        _, yu = crop_batch(x, y, (16, 16), seed)
        uniform_hits += int((yu.amax(dim=(1, 2, 3)) > 0.5).sum())
    assert fg_hits == 5 * 16
    assert uniform_hits < 0.7 * 5 * 16  # a 16x16 crop of a 64x64 image misses a 6x6 patch often


def test_foreground_crops_of_a_split_batch_equal_the_whole_batch_crops() -> None:
    """A rank holding images first.. of the global batch cuts the crops the whole batch would."""
    x, y, data_range = _batch(n=6)
    whole = crop_batch(x, y, (16, 16), 3, focus="foreground", data_range=data_range)
    parts = [
        crop_batch(
            x[a:b], y[a:b], (16, 16), 3, a, 6, focus="foreground", data_range=data_range[a:b]
        )
        for a, b in ((0, 2), (2, 6))
    ]
    assert torch.equal(whole[1], torch.cat([p[1] for p in parts]))


def test_an_empty_target_still_gets_a_crop_inside_the_image() -> None:
    x = torch.zeros(2, 1, 32, 32)
    xs, ys = crop_batch(x, x.clone(), (16, 16), 0, focus="foreground", data_range=torch.ones(2))
    assert xs.shape == (2, 1, 16, 16)


def test_an_unknown_focus_is_named() -> None:
    x, y, data_range = _batch(n=2)
    with pytest.raises(SsimreconError, match=r"^training\.crop_focus: must be uniform or"):
        crop_batch(x, y, (16, 16), 0, focus="centre", data_range=data_range)
