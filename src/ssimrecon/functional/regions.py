"""The head mask: the region of a slice that metrics are also computed in (see the definitions).

Derived from the reference alone, so it is identical for every method: per slice, the pixels with
``reference > HEAD_THRESHOLD * data_range``, holes filled (``scipy.ndimage.binary_fill_holes``,
2-D), then dilated by ``HEAD_DILATION`` pixels in city-block distance (a 3x3 cross applied
``HEAD_DILATION`` times), so that the head's edge, where reconstructions blur, is inside the mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ssimrecon.errors import SsimreconError

#: pixels above this fraction of data_range seed the mask (the threshold of ``slice_signal``)
HEAD_THRESHOLD = 0.1
#: dilation of the filled mask, in pixels (city-block distance)
HEAD_DILATION = 2

__all__ = ["HEAD_THRESHOLD", "HEAD_DILATION", "head_mask"]


def head_mask(reference: np.ndarray, data_range: float) -> np.ndarray:
    """Head mask of (S,H,W) or (H,W) reference slices on the scaled axis -> bool, same shape.

    ``data_range``: the reference volume's maximum (the same L the metrics use).  A slice with no
    pixel above the threshold gets an empty mask.
    """
    ref = np.asarray(reference)
    if ref.ndim not in (2, 3):
        raise SsimreconError(f"head_mask: expected (H,W) or (S,H,W), got shape {ref.shape}")
    if not np.isfinite(data_range) or data_range <= 0:
        raise SsimreconError(f"head_mask: data_range must be positive, got {data_range!r}")
    stack = ref[None] if ref.ndim == 2 else ref
    cross = ndimage.generate_binary_structure(2, 1)
    out = np.zeros(stack.shape, dtype=bool)
    for i, image in enumerate(stack):
        seed = image > HEAD_THRESHOLD * data_range
        if not seed.any():
            continue
        filled = ndimage.binary_fill_holes(seed)
        out[i] = ndimage.binary_dilation(filled, structure=cross, iterations=HEAD_DILATION)
    return out[0] if ref.ndim == 2 else out
