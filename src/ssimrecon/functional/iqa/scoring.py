"""How a whole-image metric is scored per slice: on the frame, or on a region's bounding box.

Inputs are (S,H,W) magnitude stacks (numpy arrays or torch tensors on any device) on the scaled
intensity axis, with ``data_range`` L > 0 the scaled reference volume's maximum (as
:mod:`ssimrecon.functional.metrics`); they are computed in float64 on the reference's device and
values outside [0, L] are used as they are.  Results are float64 (S,), numpy for numpy input and a
tensor on the reference's device for tensor input.

**NaN rule** (the rule of the paper-convention metrics): a slice is scored in a region only if the
region has a pixel on it and the reference is not all zero in it; the frame is the whole slice.
An unscored slice, or one whose frame is smaller than the metric's ``smallest_side``, is NaN.

**Head region of a whole-image metric**: the metric is computed on the crop of reference and
estimate to the bounding box of the slice's region pixels, each side grown symmetrically about
the box (shifted inward at the frame's edges) to the metric's ``min_side``, or to the frame's side
if that is smaller.  The crop holds real image pixels only: no padding is invented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ssimrecon.errors import SsimreconError

#: a whole-image metric: reference and estimate (N,1,h,w) float64, data range -> (N,) float64
ImageMetric = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
Array = np.ndarray | torch.Tensor

__all__ = ["Array", "ImageMetric", "Stacks", "as_stacks", "grown_box", "region_box", "score_slices"]


@dataclass(frozen=True)
class Stacks:
    """Validated inputs: ``ref``, ``est`` (S,H,W) float64 and ``region`` (S,H,W) bool or None, all
    on the reference's device; ``numpy`` says whether results go back as numpy arrays."""

    ref: torch.Tensor
    est: torch.Tensor
    region: torch.Tensor | None
    data_range: float
    numpy: bool

    def scored(self) -> torch.Tensor:
        """(S,) bool: the region (or frame) has a pixel and the reference is not all zero in it."""
        nonzero = self.ref != 0
        if self.region is not None:
            nonzero = nonzero & self.region
        return nonzero.flatten(1).any(dim=1)

    def output(self, values: torch.Tensor) -> Array:
        """(S,) float64 values in the caller's array type."""
        return values.cpu().numpy() if self.numpy else values


def _tensor(x: Array, dtype: torch.dtype, device: torch.device | None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(dtype=dtype, device=device)
    return torch.as_tensor(np.asarray(x), device=device).to(dtype)


def as_stacks(
    name: str, ref: Array, est: Array, data_range: float, region: Array | None = None
) -> Stacks:
    """Check and convert a metric's inputs; errors name the metric."""
    numpy = not isinstance(ref, torch.Tensor)
    device = None if numpy else ref.device
    ref_t = _tensor(ref, torch.float64, device)
    est_t = _tensor(est, torch.float64, ref_t.device)
    if ref_t.shape != est_t.shape or ref_t.dim() != 3:
        raise SsimreconError(
            f"{name}: expected (S,H,W) reference and estimate of equal shape, got "
            f"{tuple(ref_t.shape)} and {tuple(est_t.shape)}"
        )
    if not np.isfinite(float(data_range)) or float(data_range) <= 0:
        raise SsimreconError(
            f"{name}: data_range must be a positive finite number, got {data_range!r}"
        )
    region_t = None
    if region is not None:
        region_t = _tensor(region, torch.bool, ref_t.device)
        if region_t.shape != ref_t.shape:
            raise SsimreconError(
                f"{name}: region shape {tuple(region_t.shape)} is not {tuple(ref_t.shape)}"
            )
    return Stacks(ref_t, est_t, region_t, float(data_range), numpy)


def grown_box(start: int, stop: int, size: int, min_side: int) -> slice:
    """[start, stop) grown symmetrically to ``min(max(stop - start, min_side), size)`` pixels
    (the extra pixel of an odd growth after the box) and shifted to lie inside [0, size)."""
    length = min(max(stop - start, min_side), size)
    first = start - (length - (stop - start)) // 2
    first = min(max(first, 0), size - length)
    return slice(first, first + length)


def region_box(region: np.ndarray, min_side: int) -> tuple[slice, slice]:
    """Rows and columns of the bounding box of a non-empty (H,W) bool region, each grown to
    ``min_side`` pixels where the frame allows (:func:`grown_box`)."""
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    height, width = region.shape
    return (
        grown_box(int(rows[0]), int(rows[-1]) + 1, height, min_side),
        grown_box(int(cols[0]), int(cols[-1]) + 1, width, min_side),
    )


def score_slices(
    metric: ImageMetric,
    stacks: Stacks,
    min_side: int,
    smallest_side: int,
) -> Array:
    """``metric`` on every scored slice: on the frame (``stacks.region`` None) or on the region's
    grown bounding box; NaN elsewhere and where the image is smaller than ``smallest_side``.

    Slices whose boxes have the same size are computed as one batch.  Returns (S,) float64.
    """
    ref, est = stacks.ref, stacks.est
    values = torch.full((ref.shape[0],), torch.nan, dtype=torch.float64, device=ref.device)
    scored = np.flatnonzero(stacks.scored().cpu().numpy())
    if stacks.region is None:
        if len(scored) and min(ref.shape[1:]) >= smallest_side:
            idx = torch.as_tensor(scored, device=ref.device)
            values[idx] = metric(ref[idx, None], est[idx, None], stacks.data_range)
        return stacks.output(values)
    region = stacks.region.cpu().numpy()
    groups: dict[tuple[int, int], list[tuple[int, slice, slice]]] = {}
    for i in scored:
        rows, cols = region_box(region[i], min_side)
        size = (rows.stop - rows.start, cols.stop - cols.start)
        if min(size) >= smallest_side:
            groups.setdefault(size, []).append((int(i), rows, cols))
    for members in groups.values():
        ref_crops = torch.stack([ref[i, rows, cols] for i, rows, cols in members])[:, None]
        est_crops = torch.stack([est[i, rows, cols] for i, rows, cols in members])[:, None]
        idx = torch.as_tensor([i for i, _, _ in members], device=ref.device)
        values[idx] = metric(ref_crops, est_crops, stacks.data_range)
    return stacks.output(values)
