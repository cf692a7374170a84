"""head_mask against an independent construction: background components touching the border
(scipy.ndimage.label) and a city-block distance transform for the dilation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.regions import HEAD_DILATION, HEAD_THRESHOLD, head_mask
from tests.helpers.shards import ellipse_slices


def _reference_mask(image: np.ndarray, data_range: float) -> np.ndarray:
    """Threshold, fill = everything but the background components that touch the border, dilate =
    city-block distance to the filled set <= HEAD_DILATION."""
    seed = image > HEAD_THRESHOLD * data_range
    if not seed.any():
        return np.zeros_like(seed)
    labels, _ = ndimage.label(~seed)  # 4-connected background, as binary_fill_holes uses
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    outside = np.isin(labels, [lab for lab in border if lab != 0])
    filled = ~outside
    distance = ndimage.distance_transform_cdt(~filled, metric="taxicab")
    return distance <= HEAD_DILATION


def test_head_mask_fills_holes_and_dilates() -> None:
    ring = np.zeros((40, 40))
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    ring[(r > 6) & (r < 12)] = 1.0  # a ring whose inside is dark, like a ventricle
    mask = head_mask(ring, data_range=1.0)
    assert mask[20, 20]  # hole filled
    assert mask[20, 20 + 12 + HEAD_DILATION - 1] and not mask[20, 20 + 12 + HEAD_DILATION + 1]
    np.testing.assert_array_equal(mask, _reference_mask(ring, 1.0))


def test_head_mask_matches_the_independent_construction_per_slice() -> None:
    stack = ellipse_slices(6, size=32, seed=4, empty=(0,))
    data_range = float(stack.max())
    mask = head_mask(stack, data_range)
    assert mask.shape == stack.shape and mask.dtype == bool
    assert not mask[0].any()  # empty slice -> empty mask
    for image, got in zip(stack, mask):
        np.testing.assert_array_equal(got, _reference_mask(image, data_range))
    assert 0 < mask[1:].mean() < 1
    # the mask depends on the reference only and scales with data_range
    np.testing.assert_array_equal(head_mask(3 * stack, 3 * data_range), mask)


def test_head_mask_errors() -> None:
    with pytest.raises(SsimreconError, match="data_range"):
        head_mask(np.ones((4, 4)), 0.0)
    with pytest.raises(SsimreconError, match="shape"):
        head_mask(np.ones(4), 1.0)
