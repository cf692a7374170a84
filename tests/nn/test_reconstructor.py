"""The Reconstructor every stage applies: network inputs per forward model, data consistency on the
real wrapper (sampled points equal the measurement), and the paper's magnitude path unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssimrecon.kspace.coils import birdcage_sensitivities
from ssimrecon.kspace.fft import fft2c_torch, ifft2c_torch
from ssimrecon.kspace.mask import variable_density_mask
from ssimrecon.nn.reconstructor import Physics, Reconstructor, network_input
from ssimrecon.nn.unet import UNet

SIZE = 32


def _unet(channels: int, seed: int = 0) -> UNet:
    """A tiny residual U-Net whose head is random, so it changes its input."""
    torch.manual_seed(seed)
    net = UNet(channels, channels, base_channels=4, depth=2, convs_per_stage=1, residual=True)
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.5)
    return net.eval()


def _data(coils: int | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
    """(mask (H, W) bool, measured k-space (2, [C,] H, W), sensitivities or None) of a random
    complex image: the acquisition of that image, plus noise for several coils."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.from_numpy(variable_density_mask((SIZE, SIZE), 4.0, 6, seed))
    image = torch.randn(2, SIZE, SIZE, generator=g, dtype=torch.complex64)
    if coils is None:
        return mask, mask * fft2c_torch(image), None
    maps = birdcage_sensitivities((SIZE, SIZE), coils)
    k = fft2c_torch(torch.from_numpy(maps) * image[:, None])
    k = k + 0.05 * torch.randn(k.shape, generator=g, dtype=torch.complex64)
    return mask, mask * k, maps


@pytest.mark.parametrize("model", ["magnitude", "complex"])
def test_single_coil_data_consistency_keeps_every_sampled_point(model: str) -> None:
    mask, y, _ = _data(None)
    if model == "magnitude":  # the k-space of a real image
        y = mask * fft2c_torch(ifft2c_torch(y).real.to(torch.complex64))
    physics = Physics(model, data_consistency=True)
    recon = Reconstructor(_unet(physics.channels), physics, mask)
    x = recon.network_input(y)
    with torch.no_grad():
        image = recon.image(x, y)
        out = recon(x, y)
        unconstrained = Reconstructor(recon.unet, Physics(model)).image(x)
    k = fft2c_torch(image)
    torch.testing.assert_close(k[:, mask], y[:, mask], atol=1e-5, rtol=1e-5)
    # elsewhere the network's own k-space is kept
    torch.testing.assert_close(k[:, ~mask], fft2c_torch(unconstrained)[:, ~mask])
    assert not torch.allclose(fft2c_torch(unconstrained)[:, mask], y[:, mask], atol=1e-2)
    assert out.shape == (2, 1, SIZE, SIZE)
    torch.testing.assert_close(out[:, 0], image.abs())


def test_multicoil_data_consistency_per_coil() -> None:
    """With one coil the SENSE combination is invertible: every sampled point equals the
    measurement. With 8 noisy coils no image reproduces every coil's samples; the one-step layer
    restores them per coil before combining, which moves the image towards the data (the
    residual over the sampled coil k-space shrinks)."""
    for coils in (1, 8):
        mask, y, maps = _data(coils)
        physics = Physics("multicoil", data_consistency=True)
        recon = Reconstructor(_unet(2), physics, mask, maps)
        x = recon.network_input(y)
        assert x.shape == (2, 2, SIZE, SIZE)
        with torch.no_grad():
            image = recon.image(x, y)
            before = Reconstructor(recon.unet, Physics("multicoil"), None, maps).image(x)
        s = torch.from_numpy(maps)
        residual = [
            (mask * fft2c_torch(s * z[:, None]) - y).abs().pow(2).sum() for z in (image, before)
        ]
        if coils == 1:
            k = fft2c_torch(s * image[:, None])
            torch.testing.assert_close(k[..., mask], y[..., mask], atol=1e-5, rtol=1e-5)
        assert residual[0] < 0.5 * residual[1]


def test_the_magnitude_path_is_the_unet_itself() -> None:
    """Magnitude data without data consistency: the Reconstructor returns the U-Net's output
    bit for bit, from the zero-filled magnitude, as before the forward models existed."""
    mask, y, _ = _data(None)
    unet = _unet(1)
    recon = Reconstructor(unet, Physics())
    x = network_input(y, "magnitude", None)
    torch.testing.assert_close(x[:, 0], ifft2c_torch(y).abs(), rtol=0, atol=0)
    with torch.no_grad():
        assert torch.equal(recon(x), unet(x))


def test_physics_of_an_old_bundle_is_magnitude_without_dc() -> None:
    assert Physics.of_bundle({"preprocessing": {}}) == Physics("magnitude", False)
    assert Physics.of_bundle(
        {"preprocessing": {"forward_model": "complex"}, "data_consistency": True}
    ) == Physics("complex", True)


def test_missing_measurement_or_sensitivities_are_named() -> None:
    mask, y, maps = _data(8)
    with pytest.raises(Exception, match="sensitivities missing"):
        Reconstructor(_unet(2), Physics("multicoil"), mask)
    recon = Reconstructor(_unet(2), Physics("multicoil", True), mask, maps)
    with pytest.raises(Exception, match="measured k-space is missing"):
        recon(recon.network_input(y))
