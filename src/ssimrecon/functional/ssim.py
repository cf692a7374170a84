"""Structural similarity (Wang et al. 2004) in torch, identical to scikit-image's Gaussian SSIM.

Definition (see ``docs/definitions.md``): Gaussian window sigma 1.5 truncated at 3.5 sigma (11
taps), K1 = 0.01, K2 = 0.03, C1 = (K1 L)^2, C2 = (K2 L)^2 with L the data range, population
covariance, SSIM map on the valid region only (no padding: ``(H-10, W-10)``), mean over that region.
This equals ``skimage.metrics.structural_similarity(ref, est, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=L)``; SSIM is symmetric in its two images.

Implementation: the five local moments ``[x, y, x*x, y*y, x*y]`` are stacked into one tensor and
filtered by ONE separable valid-region Gaussian pass (horizontal, then vertical).  The backward pass
is analytic (a custom autograd function): the derivative of SSIM with respect to the local moments
is formed pointwise and pushed back through ONE adjoint (full-size) Gaussian pass.  On CUDA the
passes are grouped ``conv2d`` / ``conv_transpose2d``; on CPU, where oneDNN's depthwise 1-D
convolutions are slow, they are 11 strided shift-and-add steps per axis (same arithmetic, ~3x
faster).  Half/bfloat16 inputs and autocast regions are computed in float32; float64 stays float64.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F

from ssimrecon.errors import SsimreconError

K1 = 0.01
K2 = 0.03
SIGMA = 1.5
TRUNCATE = 3.5

__all__ = ["gaussian_taps", "ssim_map", "ssim", "K1", "K2", "SIGMA", "TRUNCATE"]


def gaussian_taps(sigma: float = SIGMA, truncate: float = TRUNCATE) -> torch.Tensor:
    """Normalised 1-D Gaussian taps exactly as ``scipy.ndimage.gaussian_filter`` builds them.

    radius = int(truncate * sigma + 0.5), so the defaults give 11 taps.  Returns float64, shape
    (2r+1,).
    """
    radius = int(truncate * sigma + 0.5)
    pos = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 / (sigma * sigma) * pos * pos)
    return taps / taps.sum()


@functools.cache
def _taps_tuple() -> tuple[float, ...]:
    """The default taps as Python floats (for the CPU shift-and-add path)."""
    return tuple(float(v) for v in gaussian_taps())


@functools.lru_cache(maxsize=32)
def _conv_kernels(
    channels: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grouped conv weights (channels,1,1,K) and (channels,1,K,1), cached per
    channels/dtype/device."""
    taps = gaussian_taps().to(dtype=dtype, device=device)
    k = taps.numel()
    horizontal = taps.view(1, 1, 1, k).expand(channels, 1, 1, k).contiguous()
    vertical = taps.view(1, 1, k, 1).expand(channels, 1, k, 1).contiguous()
    return horizontal, vertical


def _use_conv(t: torch.Tensor) -> bool:
    return t.device.type != "cpu"


def _filter_valid(m: torch.Tensor, use_conv: bool | None = None) -> torch.Tensor:
    """Separable Gaussian correlation, valid region: (N,C,H,W) -> (N,C,H-10,W-10)."""
    if use_conv is None:
        use_conv = _use_conv(m)
    if use_conv:
        h, v = _conv_kernels(m.shape[1], m.dtype, m.device)
        return F.conv2d(F.conv2d(m, h, groups=m.shape[1]), v, groups=m.shape[1])
    taps = _taps_tuple()
    k = len(taps)
    w_out = m.shape[-1] - k + 1
    h_out = m.shape[-2] - k + 1
    a = m[..., 0:w_out] * taps[0]
    for i in range(1, k):
        a.add_(m[..., i : i + w_out], alpha=taps[i])
    b = a[..., 0:h_out, :] * taps[0]
    for i in range(1, k):
        b.add_(a[..., i : i + h_out, :], alpha=taps[i])
    return b


def _filter_adjoint(p: torch.Tensor, use_conv: bool | None = None) -> torch.Tensor:
    """Adjoint of :func:`_filter_valid` (full-size scatter): (N,C,H',W') -> (N,C,H'+10,W'+10)."""
    if use_conv is None:
        use_conv = _use_conv(p)
    if use_conv:
        h, v = _conv_kernels(p.shape[1], p.dtype, p.device)
        return F.conv_transpose2d(F.conv_transpose2d(p, v, groups=p.shape[1]), h, groups=p.shape[1])
    taps = _taps_tuple()
    k = len(taps)
    n, c, hp, wp = p.shape
    a = p.new_zeros((n, c, hp + k - 1, wp))
    for i in range(k):
        a[..., i : i + hp, :].add_(p, alpha=taps[i])
    b = p.new_zeros((n, c, hp + k - 1, wp + k - 1))
    for i in range(k):
        b[..., i : i + wp].add_(a, alpha=taps[i])
    return b


class _SSIMMap(torch.autograd.Function):
    """SSIM map with an analytic backward.  Inputs (B,C,H,W), c1/c2 (B,1,1,1) constants."""

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, y: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor
    ) -> torch.Tensor:  # type: ignore[override]
        c = x.shape[1]
        moments = _filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1))
        ux, uy, mxx, myy, mxy = moments.split(c, dim=1)
        uxy = ux * uy
        a1 = 2 * uxy + c1
        a2 = 2 * (mxy - uxy) + c2
        b1 = ux * ux + uy * uy + c1
        b2 = (mxx + myy) - (b1 - c1) + c2
        s = (a1 * a2) / (b1 * b2)
        ctx.save_for_backward(x, y, ux, uy, a1, a2, b1, b2, s)
        return s

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, y, ux, uy, a1, a2, b1, b2, s = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_x or need_y):
            return None, None, None, None
        inv_d = 1.0 / (b1 * b2)
        t = 2 * (a2 - a1) * inv_d  # d/du common factor
        u = 2 * s * (1.0 / b2 - 1.0 / b1)
        q = grad * (-s / b2)  # dL/d E[x^2] == dL/d E[y^2]
        r = grad * (2 * a1 * inv_d)  # dL/d E[xy]
        parts = []
        if need_x:
            parts.append(grad * (t * uy + u * ux))  # dL/d mu_x
        if need_y:
            parts.append(grad * (t * ux + u * uy))  # dL/d mu_y
        parts += [q, r]
        back = _filter_adjoint(torch.cat(parts, dim=1)).split(x.shape[1], dim=1)
        gq, gr = back[-2], back[-1]
        gx = back[0] + 2 * x * gq + y * gr if need_x else None
        gy = back[-3] + 2 * y * gq + x * gr if need_y else None
        return gx, gy, None, None


def _constants(
    data_range: float | torch.Tensor, batch: int, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """C1, C2 as (B,1,1,1) tensors from a float or a (B,) / scalar tensor data range."""
    if not isinstance(data_range, torch.Tensor) and not float(data_range) > 0:
        raise SsimreconError(f"ssim: data_range must be positive, got {data_range!r}")
    if isinstance(data_range, torch.Tensor):
        lr = data_range.detach().to(dtype=like.dtype, device=like.device)
    else:  # keep a Python float at full precision (torch.as_tensor would round it to float32)
        lr = torch.tensor(float(data_range), dtype=like.dtype, device=like.device)
    if lr.numel() == 1:
        lr = lr.reshape(1).expand(batch)
    if lr.shape != (batch,):
        raise SsimreconError(
            f"ssim: data_range must be a float or shape ({batch},), got shape {tuple(lr.shape)}"
        )
    if lr.device.type == "cpu" and not bool(torch.all(lr > 0)):  # no device sync on accelerators
        raise SsimreconError("ssim: data_range must be positive")
    lr = lr.view(batch, 1, 1, 1)
    return (K1 * lr) ** 2, (K2 * lr) ** 2


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float | torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM on the valid region.

    x, y: (B,C,H,W) (C is 1 for magnitude images), any memory format/device; data_range: float or
    (B,). Returns (B,C,H-10,W-10) in float64 if inputs are float64, else float32 (also under
    autocast).
    """
    if x.shape != y.shape or x.dim() != 4:
        raise SsimreconError(
            f"ssim: expected two (B,C,H,W) tensors of equal shape, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    k = len(_taps_tuple())
    if x.shape[-1] < k or x.shape[-2] < k:
        raise SsimreconError(
            f"ssim: images must be at least {k}x{k} pixels, got {tuple(x.shape[-2:])}"
        )
    dtype = torch.promote_types(_compute_dtype(x), _compute_dtype(y))
    device_type = x.device.type
    autocast_on = device_type in ("cpu", "cuda", "xpu", "mps") and torch.is_autocast_enabled(
        device_type
    )
    with torch.autocast(device_type, enabled=False) if autocast_on else contextlib.nullcontext():
        xf, yf = x.to(dtype), y.to(dtype)
        c1, c2 = _constants(data_range, x.shape[0], xf)
        return _SSIMMap.apply(xf, yf, c1, c2)


def ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float | torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """SSIM of (B,C,H,W) image pairs: reduction "mean" -> scalar, "none" -> per-image (B,)."""
    per_image = ssim_map(x, y, data_range).mean(dim=(1, 2, 3))
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return per_image.mean()
    raise SsimreconError(f"ssim: reduction must be 'mean' or 'none', got {reduction!r}")
