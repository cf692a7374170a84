"""Data-consistency layers: measured samples kept, the estimate elsewhere, soft DC's limit,
the multicoil layer's (in)exactness, conjugate gradients, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.coils import birdcage_sensitivities
from ssimrecon.kspace.fft import fft2c_torch, ifft2c_torch
from ssimrecon.kspace.mask import variable_density_mask
from ssimrecon.kspace.phase_model import complex_reference
from ssimrecon.nn.consistency import (
    DataConsistency,
    data_consistency,
    multicoil_data_consistency,
    multicoil_kspace,
    to_channels,
    to_complex,
)

H = W = 32


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.fixture(scope="module")
def scene() -> dict[str, torch.Tensor]:
    """Two complex slices, normalised 4-coil birdcage maps, an R=3 mask, measurements made from
    the same maps, and a noisy "network estimate"."""
    rng = np.random.default_rng(0)
    mag = rng.random((2, H, W), dtype=np.float32) * 0.2 + 0.8
    truth = torch.from_numpy(complex_reference(mag, seed=1))
    maps = torch.from_numpy(birdcage_sensitivities((H, W), 4)).expand(2, -1, -1, -1).clone()
    mask = torch.from_numpy(variable_density_mask((H, W), 3.0, 6, seed=1))
    g = torch.Generator().manual_seed(0)
    estimate = truth + 0.3 * torch.randn(2, H, W, dtype=torch.complex64, generator=g)
    return {
        "truth": truth,
        "maps": maps,
        "mask": mask,
        "y1": mask * fft2c_torch(truth),
        "yc": mask * fft2c_torch(maps * truth[:, None]),
        "estimate": estimate,
    }


def residual(out: torch.Tensor, s: dict[str, torch.Tensor]) -> float:
    """Relative multicoil consistency residual ``||m fft2c(S_c out) - y_c|| / ||y_c||``."""
    return rel(s["mask"] * fft2c_torch(s["maps"] * out[:, None]), s["yc"])


def test_channel_conversion_round_trips():
    z = torch.randn(3, 4, 5, dtype=torch.complex64)
    c = to_channels(z)
    assert c.shape == (3, 2, 4, 5) and c.dtype == torch.float32
    assert torch.equal(to_complex(c), z)
    with pytest.raises(SsimreconError, match="x must be real"):
        to_complex(torch.randn(3, 1, 4, 5))


def test_single_coil_hard_dc_keeps_measured_samples_and_the_estimate_elsewhere(scene):
    m, y, x = scene["mask"], scene["y1"], scene["estimate"]
    out = data_consistency(x, y, m)
    assert out.dtype == torch.complex64 and out.shape == x.shape
    k, k_est = fft2c_torch(out), fft2c_torch(x)
    assert rel(k[:, m], y[:, m]) < 1e-4
    assert rel(k[:, ~m], k_est[:, ~m]) < 1e-4
    # (real, imaginary) channels in -> channels out, same result; a per-batch (B, H, W) mask
    out_c = data_consistency(to_channels(x), y, m)
    assert out_c.shape == (2, 2, H, W) and rel(to_complex(out_c), out) < 1e-6
    assert rel(data_consistency(x, y, m.expand(2, -1, -1).float()), out) < 1e-6


def test_soft_dc_weights_the_measurement_and_tends_to_hard_dc(scene):
    m, y, x = scene["mask"], scene["y1"], scene["estimate"]
    k_est = fft2c_torch(x)
    soft = fft2c_torch(data_consistency(x, y, m, noise_lambda=1.0))
    assert rel(soft[:, m], (k_est[:, m] + y[:, m]) / 2) < 1e-4
    assert rel(soft[:, ~m], k_est[:, ~m]) < 1e-4
    hard = data_consistency(x, y, m)
    assert rel(data_consistency(x, y, m, noise_lambda=1e6), hard) < 1e-5
    with pytest.raises(SsimreconError, match="noise_lambda"):
        data_consistency(x, y, m, noise_lambda=-1.0)
    with pytest.raises(SsimreconError, match="mask"):
        data_consistency(x, y, m[:-1])


def test_multicoil_kspace_is_consistent_per_coil(scene):
    m, yc, x, maps = scene["mask"], scene["yc"], scene["estimate"], scene["maps"]
    k = multicoil_kspace(x, maps, yc, m)
    k_est = fft2c_torch(maps * x[:, None])
    assert k.shape == (2, 4, H, W)
    assert rel(k[..., m], yc[..., m]) < 1e-4
    assert rel(k[..., ~m], k_est[..., ~m]) < 1e-4


def test_one_step_multicoil_dc(scene):
    """The layer of the brief: a fixed point at the truth, never a larger residual, but for C > 1
    NOT exactly consistent after the SENSE combination (the re-encoded image differs from y)."""
    m, yc, maps = scene["mask"], scene["yc"], scene["maps"]
    truth, x = scene["truth"], scene["estimate"]
    assert rel(multicoil_data_consistency(truth, maps, yc, m), truth) < 1e-5
    out = multicoil_data_consistency(x, maps, yc, m)
    before, after = residual(x, scene), residual(out, scene)
    assert after < 0.5 * before  # measured: 0.20 -> 0.068
    assert after > 1e-2
    # one coil of unit magnitude: the encoding is unitary and the layer is single-coil DC
    phase = torch.exp(1j * torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(1)))
    y1 = m * fft2c_torch(phase * truth[:, None])
    single = multicoil_data_consistency(x, phase.to(torch.complex64), y1, m)
    reference = data_consistency(x * phase[:, 0], y1[:, 0], m) * phase[:, 0].conj()
    assert rel(single, reference) < 1e-5


def test_conjugate_gradient_dc(scene):
    """Soft DC with CG reaches the minimiser of |z - x|^2 + lambda |m E z - y|^2 (its gradient
    vanishes); hard DC with CG lowers the residual well below the one step's."""
    m, yc, maps, x = scene["mask"], scene["yc"], scene["maps"], scene["estimate"]
    lam = 10.0  # condition number <= 1 + lambda: steepest descent would stall near 1e-2 here
    z = multicoil_data_consistency(x, maps, yc, m, noise_lambda=lam, cg_iterations=30)
    back = maps.conj() * ifft2c_torch(m * (m * fft2c_torch(maps * z[:, None]) - yc))
    gradient = (z - x) + lam * back.sum(dim=1)
    norm = torch.linalg.vector_norm
    assert norm(gradient) < 1e-4 * norm(z - x)  # measured: 5e-6
    one_step = residual(multicoil_data_consistency(x, maps, yc, m), scene)
    cg = residual(multicoil_data_consistency(x, maps, yc, m, cg_iterations=30), scene)
    assert cg < 0.1 * one_step  # measured: 0.068 -> 0.0047; exact consistency converges slowly
    with pytest.raises(SsimreconError, match="cg_iterations"):
        multicoil_data_consistency(x, maps, yc, m, cg_iterations=-1)


@pytest.mark.parametrize("cg_iterations", [0, 5])
def test_gradients_flow(scene, cg_iterations):
    m, yc, y1 = scene["mask"], scene["yc"], scene["y1"]
    x = to_channels(scene["estimate"]).requires_grad_(True)
    maps = scene["maps"].clone().requires_grad_(True)
    multi = multicoil_data_consistency(
        x, maps, yc, m, noise_lambda=2.0, cg_iterations=cg_iterations
    )
    loss = multi.square().mean() + data_consistency(x, y1, m).abs().mean()
    loss.backward()
    for grad in (x.grad, maps.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_module_dispatches_on_sensitivities(scene):
    m, x, maps = scene["mask"], scene["estimate"], scene["maps"]
    layer = DataConsistency(noise_lambda=None)
    assert rel(layer(x, scene["y1"], m), data_consistency(x, scene["y1"], m)) < 1e-7
    multi = multicoil_data_consistency(x, maps, scene["yc"], m)
    assert rel(layer(x, scene["yc"], m, sensitivities=maps), multi) < 1e-7
    with pytest.raises(SsimreconError, match="noise_lambda"):
        DataConsistency(noise_lambda=0.0)
    with pytest.raises(SsimreconError, match="sensitivities"):
        multicoil_data_consistency(x, maps[:, :, :-1], scene["yc"], m)
