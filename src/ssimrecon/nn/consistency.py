"""Data-consistency layers: replace a network estimate's k-space by the measurement where sampled.

Shapes: an image estimate ``x`` is complex (B, H, W) or real (B, 2, H, W) with (real, imaginary)
channels (:func:`to_complex` / :func:`to_channels`); each function returns the form it was given.
Single-coil measurements ``y`` are complex (B, H, W); multicoil ones (B, C, H, W) with
sensitivities ``S`` (B, C, H, W); a mask is (H, W) or (B, H, W), bool or 0/1. k-space follows
``ssimrecon.kspace.fft`` (centred, orthonormal). complex64 in float32, differentiable, any device.

Hard DC keeps ``y`` at sampled points; soft DC (``noise_lambda`` = lambda > 0, for noisy ``y``)
takes ``(k + lambda y) / (1 + lambda)`` there, which tends to hard DC as lambda grows.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.fft import fft2c_torch, ifft2c_torch

#: sum_c |S_c|^2 at or below this combines to 0 (no coil sees the pixel)
COMBINE_EPS = 1e-8
#: CG denominators at or below this stop the update (the residual is already 0)
_CG_TINY = 1e-30


def to_complex(x: Tensor) -> Tensor:
    """Real (B, 2, H, W) (real, imaginary) channels -> complex (B, H, W)."""
    if x.is_complex() or x.ndim != 4 or x.shape[1] != 2:
        raise SsimreconError(f"x must be real (B, 2, H, W), got {tuple(x.shape)} {x.dtype}")
    return torch.complex(x[:, 0], x[:, 1])


def to_channels(z: Tensor) -> Tensor:
    """Complex (B, H, W) -> real (B, 2, H, W) (real, imaginary) channels."""
    if not z.is_complex() or z.ndim != 3:
        raise SsimreconError(f"z must be complex (B, H, W), got {tuple(z.shape)} {z.dtype}")
    return torch.stack((z.real, z.imag), dim=1)


def _image(x: Tensor) -> tuple[Tensor, bool]:
    """(complex (B, H, W) image, whether ``x`` came as channels)."""
    if x.is_complex():
        if x.ndim != 3:
            raise SsimreconError(f"complex x must be (B, H, W), got {tuple(x.shape)}")
        return x, False
    return to_complex(x), True


def _weight(noise_lambda: float | None) -> float:
    """Share ``lambda / (1 + lambda)`` of the measurement at sampled points (1 for hard DC)."""
    if noise_lambda is None:
        return 1.0
    if not math.isfinite(noise_lambda) or noise_lambda <= 0:
        raise SsimreconError(f"noise_lambda must be a number > 0 or None, got {noise_lambda}")
    return noise_lambda / (1.0 + noise_lambda)


def _mask(mask: Tensor, like: Tensor, coil_axis: bool) -> Tensor:
    """0/1 float mask broadcastable against ``like`` (B, [C,] H, W)."""
    m = torch.as_tensor(mask, device=like.device)
    if m.ndim not in (2, 3) or m.shape[-2:] != like.shape[-2:]:
        raise SsimreconError(
            f"mask must be (H, W) or (B, H, W) with H, W = {tuple(like.shape[-2:])}, "
            f"got {tuple(m.shape)}"
        )
    m = m.to(like.real.dtype)
    return m.unsqueeze(-3) if coil_axis and m.ndim == 3 else m


def _replace(k: Tensor, y: Tensor, m: Tensor, weight: float) -> Tensor:
    """``(1 - m) k + m t`` with ``t = y`` (weight 1) or ``(k + lambda y) / (1 + lambda)``."""
    target = y if weight == 1.0 else (1.0 - weight) * k + weight * y
    return (1 - m) * k + m * target


def data_consistency(
    x: Tensor, y: Tensor, mask: Tensor, noise_lambda: float | None = None
) -> Tensor:
    """Single-coil DC: ``ifft2c((1 - m) fft2c(x) + m t)``, ``t`` = ``y`` (hard) or
    ``(fft2c(x) + lambda y) / (1 + lambda)`` (soft); exact: the output's k-space is ``y`` at
    sampled points (hard) and the estimate's elsewhere."""
    z, channels = _image(x)
    if y.shape != z.shape:
        raise SsimreconError(f"y must be (B, H, W) = {tuple(z.shape)}, got {tuple(y.shape)}")
    k = fft2c_torch(z)
    out = ifft2c_torch(_replace(k, y.to(k.dtype), _mask(mask, k, False), _weight(noise_lambda)))
    return to_channels(out) if channels else out


def sense_combine_torch(coil_images: Tensor, sensitivities: Tensor) -> Tensor:
    """``sum_c conj(S_c) x_c / sum_c |S_c|^2`` over dim -3 (B, C, H, W) -> (B, H, W); 0 where
    ``sum_c |S_c|^2 <= COMBINE_EPS``."""
    num = torch.sum(sensitivities.conj() * coil_images, dim=-3)
    den = torch.sum(sensitivities.real**2 + sensitivities.imag**2, dim=-3)
    seen = den > COMBINE_EPS
    return torch.where(seen, num / torch.where(seen, den, torch.ones_like(den)), 0)


def _check_multicoil(z: Tensor, sensitivities: Tensor, y: Tensor) -> None:
    b, h, w = z.shape
    shape = tuple(sensitivities.shape)
    if len(shape) != 4 or (shape[0], *shape[2:]) != (b, h, w):
        raise SsimreconError(
            f"sensitivities must be (B, C, H, W) with B, H, W = {(b, h, w)}, "
            f"got {tuple(sensitivities.shape)}"
        )
    if y.shape != sensitivities.shape:
        raise SsimreconError(
            f"y must be (B, C, H, W) = {tuple(sensitivities.shape)}, got {tuple(y.shape)}"
        )


def multicoil_kspace(
    x: Tensor, sensitivities: Tensor, y: Tensor, mask: Tensor, noise_lambda: float | None = None
) -> Tensor:
    """The estimate's coil k-space after per-coil DC (B, C, H, W) complex:
    ``k_c = fft2c(S_c x)``, then ``(1 - m) k_c + m t_c`` as in :func:`data_consistency`. Exact per
    coil: ``y_c`` at sampled points (hard), ``fft2c(S_c x)`` elsewhere."""
    z, _ = _image(x)
    _check_multicoil(z, sensitivities, y)
    k = fft2c_torch(sensitivities.to(z.dtype) * z.unsqueeze(-3))
    return _replace(k, y.to(k.dtype), _mask(mask, k, True), _weight(noise_lambda))


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Real part of ``sum conj(a) b`` per batch element, shape (B, 1, 1, 1)."""
    return torch.sum((a.conj() * b).real, dim=(1, 2, 3), keepdim=True)


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    ok = den > _CG_TINY
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), 0)


def multicoil_data_consistency(
    x: Tensor,
    sensitivities: Tensor,
    y: Tensor,
    mask: Tensor,
    noise_lambda: float | None = None,
    cg_iterations: int = 0,
) -> Tensor:
    """Multicoil DC: the SENSE combination of ``ifft2c`` of :func:`multicoil_kspace` (B, H, W).

    With ``cg_iterations=0`` (one step, the common unrolled-network layer) the coil k-space is
    consistent before the combination, but the combined image is NOT exactly consistent for C > 1:
    re-encoding it, ``m fft2c(S_c out)``, differs from ``y_c`` unless the corrected coil images are
    all ``S_c`` times one image (e.g. when ``x`` is already consistent). The residual never grows.
    ``cg_iterations > 0`` runs conjugate gradients on the sampled coil k-space ``u`` of
    ``out = combine(ifft2c(fft2c(S x) + m u))`` for ``(m E P E^H m + I / lambda) u = m (y - E x)``
    (E = coil encoding, P = 1 / sum |S|^2; no ``I / lambda`` for hard DC), starting from the
    one-step ``u``: hard DC then converges to ``m fft2c(S_c out) == y_c``, the consistent image
    closest to ``x`` (for normalised S), and soft DC to the minimiser of
    ``|out - x|^2 + lambda |m E out - y|^2``.
    """
    if int(cg_iterations) != cg_iterations or cg_iterations < 0:
        raise SsimreconError(f"cg_iterations must be an integer >= 0, got {cg_iterations}")
    z, channels = _image(x)
    weight = _weight(noise_lambda)
    _check_multicoil(z, sensitivities, y)
    s = sensitivities.to(z.dtype)
    k = fft2c_torch(s * z.unsqueeze(-3))
    m = _mask(mask, k, True)
    residual = m * (y.to(k.dtype) - k)
    u = weight * residual  # the one-step correction: (1 - m) k + m t = k + m u
    if cg_iterations:
        shift = 0.0 if noise_lambda is None else 1.0 / noise_lambda

        def normal(v: Tensor) -> Tensor:
            image = sense_combine_torch(ifft2c_torch(m * v), s)
            return m * fft2c_torch(s * image.unsqueeze(-3)) + shift * v

        r = residual - normal(u)
        p = r
        rr = _dot(r, r)
        for _ in range(int(cg_iterations)):
            ap = normal(p)
            alpha = _safe_ratio(rr, _dot(p, ap))
            u = u + alpha * p
            r = r - alpha * ap
            rr_new = _dot(r, r)
            p = r + _safe_ratio(rr_new, rr) * p
            rr = rr_new
    out = sense_combine_torch(ifft2c_torch(k + m * u), s)
    return to_channels(out) if channels else out


class DataConsistency(nn.Module):
    """DC layer: :func:`data_consistency` without sensitivities, else
    :func:`multicoil_data_consistency`; ``noise_lambda`` and ``cg_iterations`` are fixed."""

    def __init__(self, noise_lambda: float | None = None, cg_iterations: int = 0) -> None:
        super().__init__()
        _weight(noise_lambda)  # validate now, not at the first batch
        if int(cg_iterations) != cg_iterations or cg_iterations < 0:
            raise SsimreconError(f"cg_iterations must be an integer >= 0, got {cg_iterations}")
        self.noise_lambda = noise_lambda
        self.cg_iterations = int(cg_iterations)

    def forward(
        self, x: Tensor, y: Tensor, mask: Tensor, sensitivities: Tensor | None = None
    ) -> Tensor:
        if sensitivities is None:
            return data_consistency(x, y, mask, self.noise_lambda)
        return multicoil_data_consistency(
            x, sensitivities, y, mask, self.noise_lambda, self.cg_iterations
        )
