"""Centred orthonormal FFTs: definition, round trip, Parseval, torch twins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssimrecon.kspace.fft import (
    fft2c,
    fft2c_torch,
    ifft2c,
    ifft2c_torch,
    zero_filled_magnitude,
    zero_filled_magnitude_torch,
)

SHAPES = [(3, 16, 12), (2, 15, 9), (1, 8, 7), (10, 6)]


def _reference(x: np.ndarray) -> np.ndarray:
    """The design's definition written with numpy's own shifts."""
    return np.fft.fftshift(
        np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )


def _random_complex(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_fft2c_matches_definition(shape):
    x = _random_complex(shape)
    np.testing.assert_allclose(fft2c(x), _reference(x), atol=1e-12)
    np.testing.assert_allclose(ifft2c(_reference(x)), x, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_and_parseval(shape):
    x = _random_complex(shape, seed=1)
    k = fft2c(x)
    np.testing.assert_allclose(ifft2c(k), x, atol=1e-12)
    np.testing.assert_allclose(np.sum(np.abs(k) ** 2), np.sum(np.abs(x) ** 2), rtol=1e-12)


def test_dc_sits_at_centre():
    h, w = 10, 8
    k = fft2c(np.full((h, w), 2.0))
    expected = np.zeros((h, w), dtype=complex)
    expected[h // 2, w // 2] = 2.0 * np.sqrt(h * w)
    np.testing.assert_allclose(k, expected, atol=1e-12)


def test_single_precision_is_kept():
    x = np.random.default_rng(2).random((4, 16, 16), dtype=np.float32)
    k = fft2c(x)
    assert k.dtype == np.complex64
    assert ifft2c(k).dtype == np.complex64
    mag = zero_filled_magnitude(k)
    assert mag.dtype == np.float32
    np.testing.assert_allclose(mag, x, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 16, 12), (3, 9, 7)])
def test_torch_twins_match_numpy(shape):
    x = _random_complex(shape, seed=3)
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(fft2c_torch(xt).numpy(), fft2c(x), atol=1e-10)
    np.testing.assert_allclose(ifft2c_torch(xt).numpy(), ifft2c(x), atol=1e-10)
    k64 = fft2c(x.astype(np.complex64))
    mag_t = zero_filled_magnitude_torch(torch.from_numpy(k64))
    assert mag_t.dtype == torch.float32
    np.testing.assert_allclose(mag_t.numpy(), zero_filled_magnitude(k64), atol=1e-5)


def test_torch_fft_is_differentiable():
    x = torch.randn(1, 8, 8, dtype=torch.float64, requires_grad=True)
    loss = fft2c_torch(x).abs().pow(2).sum()  # Parseval: equals sum x^2, gradient 2x
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * x.detach())


def test_overwrite_x_gives_the_same_result_and_default_keeps_input():
    x = _random_complex((3, 8, 10), seed=4).astype(np.complex64)
    keep = x.copy()
    expected = _reference(x.astype(np.complex128))
    np.testing.assert_allclose(fft2c(x), expected, atol=1e-5)
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_allclose(fft2c(x.copy(), overwrite_x=True), expected, atol=1e-5)
    np.testing.assert_allclose(ifft2c(fft2c(x), overwrite_x=True), keep, atol=1e-5)
