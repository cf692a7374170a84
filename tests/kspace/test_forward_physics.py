"""Forward-model physics: Hermitian mirrors and effective acceleration, the complex reference,
birdcage coils, coil combination, the low-resolution sensitivity estimate and k-space noise."""

from __future__ import annotations

import numpy as np
import pytest

from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.coils import (
    add_kspace_noise,
    birdcage_sensitivities,
    estimate_sensitivities,
    measured_snr_db,
    rss,
    sense_combine,
)
from ssimrecon.kspace.effective import (
    covered_by_mirrors,
    effective_acceleration,
    hermitian_fill,
    mirror_index,
)
from ssimrecon.kspace.fft import fft2c, ifft2c
from ssimrecon.kspace.mask import center_region, variable_density_mask
from ssimrecon.kspace.phase_model import complex_reference


def smooth_object(h: int, w: int) -> np.ndarray:
    """(H, W) float32 test object: an ellipse with a soft (logistic, 5 % of the radius) edge and a
    gentle cosine shading, 0 outside."""
    y = (np.arange(h) - h / 2) / (h / 2)
    x = (np.arange(w) - w / 2) / (w / 2)
    r = np.sqrt((y[:, None] / 0.7) ** 2 + (x[None, :] / 0.55) ** 2)
    shading = 1 + 0.3 * np.cos(3 * x[None, :])
    return (shading / (1 + np.exp((r - 1) / 0.05))).astype(np.float32)


def asymmetry(k: np.ndarray) -> float:
    """``||k - conj(k[mirror])|| / ||k||`` over the last two axes (0 for a real image)."""
    rows, cols = mirror_index(k.shape[-2:])
    return float(np.linalg.norm(k - np.conj(k[..., rows, cols])) / np.linalg.norm(k))


def psnr(est: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(ref.max() ** 2 / np.mean((est - ref) ** 2)))


# --- Hermitian mirrors ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 6), (7, 5), (6, 9), (4, 4), (1, 3)])
def test_mirror_index_is_the_negated_frequency(shape):
    """Index r holds frequency r - N//2; the mirror holds the negated frequency modulo N."""
    rows, cols = mirror_index(shape)
    for axis, (n, got) in enumerate(zip(shape, (rows[:, 0], cols[0, :]))):
        freq = np.arange(n) - n // 2
        expected = [int(np.flatnonzero((freq + f) % n == 0)[0]) for f in freq]
        assert got.tolist() == expected, axis
    if shape == (8, 6):  # even sizes: (N - r) % N; row 0 (Nyquist) and the DC row are their own
        assert rows[:, 0].tolist() == [0, 7, 6, 5, 4, 3, 2, 1]
    if shape == (7, 5):  # odd sizes: N - 1 - r
        assert rows[:, 0].tolist() == [6, 5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize("shape", [(8, 6), (7, 5), (6, 9), (64, 64)])
def test_fft_of_a_real_image_is_hermitian_at_the_mirror(shape):
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    k = fft2c(image)
    rows, cols = mirror_index(shape)
    assert np.linalg.norm(k[rows, cols] - np.conj(k)) <= 1e-5 * np.linalg.norm(k)


def test_complex_reference_and_coil_kspace_are_not_hermitian():
    mag = np.stack([smooth_object(64, 64), 0.5 * smooth_object(64, 64)])
    assert asymmetry(fft2c(mag)) < 1e-5
    ref = complex_reference(mag, seed=3)
    assert asymmetry(fft2c(ref[0])) > 0.1 and asymmetry(fft2c(ref[1])) > 0.1
    coil_kspace = fft2c(birdcage_sensitivities((64, 64), 4) * mag[0])  # magnitude object, coils
    assert min(asymmetry(k) for k in coil_kspace) > 0.1


def test_complex_reference_keeps_the_magnitude_and_is_seeded():
    mag = np.stack([smooth_object(32, 48)] * 3)
    a, b = complex_reference(mag, 5), complex_reference(mag, 5)
    assert a.dtype == np.complex64 and a.shape == mag.shape
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.abs(a), mag, rtol=1e-5, atol=1e-6)
    assert np.abs(np.angle(complex_reference(mag, 6)) - np.angle(a))[mag > 0.5].max() > 0.1
    with pytest.raises(SsimreconError, match="magnitude"):
        complex_reference(mag[0], 5)


# --- effective acceleration -------------------------------------------------------------------


def test_half_plane_mask_is_fully_determined_for_real_data():
    """Each mirror pair sampled once (self-mirrored points sampled): nominal R ~ 2, Hermitian 1."""
    h, w = 16, 16
    rows, cols = mirror_index((h, w))
    flat = np.arange(h * w).reshape(h, w)
    mask = flat <= flat[rows, cols]
    assert not np.any(mask & mask[rows, cols] & (flat != flat[rows, cols]))  # no pair twice
    assert int(mask.sum()) == (h * w + 4) // 2  # 4 self-mirrored points for even H, W
    assert effective_acceleration(mask, hermitian=False) == pytest.approx(256 / 130)
    assert effective_acceleration(mask, hermitian=True) == 1.0
    assert covered_by_mirrors(mask).all()


def test_tiny_mask_by_hand():
    """4x4, mirror of index r is (4 - r) % 4 on each axis: (0,0) is its own mirror, (1,1) <->
    (3,3), (2,1) <-> (2,3). Sampling (0,0), (1,1), (3,3), (2,1): 4 samples, covered = those plus
    (2,3) = 5 points, so R = 16/4 = 4 nominal and 16/5 = 3.2 Hermitian."""
    mask = np.zeros((4, 4), dtype=bool)
    for r, c in [(0, 0), (1, 1), (3, 3), (2, 1)]:
        mask[r, c] = True
    covered = covered_by_mirrors(mask)
    assert sorted(zip(*np.nonzero(covered))) == [(0, 0), (1, 1), (2, 1), (2, 3), (3, 3)]
    assert effective_acceleration(mask, hermitian=False) == 4.0
    assert effective_acceleration(mask, hermitian=True) == 3.2
    with pytest.raises(SsimreconError, match="no sampled points"):
        effective_acceleration(np.zeros((4, 4), dtype=bool), hermitian=True)


def test_hermitian_fill_helps_magnitude_data_only():
    """The known leak: mirroring the samples recovers real-image k-space exactly and raises the
    zero-filled PSNR; on the complex reference it inserts wrong values and does not help."""
    mag = smooth_object(64, 64)
    mask = variable_density_mask((64, 64), 4.0, 8, seed=0)
    assert effective_acceleration(mask, True) < 0.7 * effective_acceleration(mask, False)
    full = fft2c(mag)
    filled = hermitian_fill(full * mask, mask)
    covered = covered_by_mirrors(mask)
    assert filled.dtype == np.complex64
    np.testing.assert_allclose(filled[covered], full[covered], atol=1e-5 * np.abs(full).max())
    assert np.all(filled[~covered] == 0)
    zf, leak = psnr(np.abs(ifft2c(full * mask)), mag), psnr(np.abs(ifft2c(filled)), mag)
    assert leak > zf + 2.0  # measured: 28.9 -> 32.8 dB

    full_c = fft2c(complex_reference(mag[None], seed=1)[0])
    zf_c = psnr(np.abs(ifft2c(full_c * mask)), mag)
    leak_c = psnr(np.abs(ifft2c(hermitian_fill(full_c * mask, mask))), mag)
    assert leak_c < zf_c + 0.5  # measured: 23.1 -> 21.3 dB


# --- coils ------------------------------------------------------------------------------------


def test_birdcage_model_and_normalisation():
    h, w = 32, 48
    raw = birdcage_sensitivities((h, w), 4, normalize=False)
    # coil 0 sits at (x, y) = (1.5, 0); the centre pixel is 1.5 away in the direction (-1, 0)
    assert abs(raw[0, h // 2, w // 2]) == pytest.approx(1 / 1.5, rel=1e-6)
    assert np.angle(raw[0, h // 2, w // 2]) == pytest.approx(np.arctan2(-1.5, -0.0), abs=1e-6)
    # coil 1 (angle pi/2) is closest to the last row (y -> +1): its magnitude peaks there
    assert np.unravel_index(np.abs(raw[1]).argmax(), (h, w))[0] == h - 1
    maps = birdcage_sensitivities((h, w), 4)
    assert maps.dtype == np.complex64 and maps.shape == (4, h, w)
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.angle(maps), np.angle(raw), atol=1e-5)
    with pytest.raises(SsimreconError, match="relative_radius"):
        birdcage_sensitivities((h, w), 4, relative_radius=0.5)


def test_rss_and_sense_combine_invert_fully_sampled_coil_images():
    x = complex_reference(smooth_object(32, 32)[None], seed=2)  # (1, H, W)
    maps = birdcage_sensitivities((32, 32), 6)
    coil_images = ifft2c(fft2c(maps[None] * x[:, None]))  # (1, C, H, W)
    combined_rss = rss(coil_images)
    assert combined_rss.dtype == np.float32 and combined_rss.shape == (1, 32, 32)
    np.testing.assert_allclose(combined_rss, np.abs(x), rtol=1e-5, atol=1e-5 * np.abs(x).max())
    combined = sense_combine(coil_images, maps)
    assert combined.dtype == np.complex64
    np.testing.assert_allclose(combined, x, atol=1e-5 * np.abs(x).max())
    np.testing.assert_array_equal(sense_combine(coil_images, np.zeros_like(maps)), 0)


def test_estimated_sensitivities_recover_the_magnitude():
    """From the central 24x24 of an 8-coil birdcage acquisition of a smooth complex object, SENSE
    combination with the estimate matches |x| to 1 % of its maximum in the object (|x| > 10 % of
    the maximum) and in the whole frame (measured: 0.12 %); it keeps |x|, not the phase."""
    mag = np.stack([smooth_object(64, 64), smooth_object(64, 64)[::-1]])
    x = complex_reference(mag, seed=4)
    maps = birdcage_sensitivities((64, 64), 8)
    kspace = fft2c(maps[None] * x[:, None])  # (S, C, H, W)
    est = estimate_sensitivities(kspace, center_size=24)
    assert est.shape == kspace.shape and est.dtype == np.complex64
    power = np.sum(np.abs(est) ** 2, axis=1)
    seen = power > 0  # 0 where the low-resolution RSS is below ESTIMATE_EPS of its maximum
    assert seen[mag > 0.01 * mag.max()].all()
    np.testing.assert_allclose(power[seen], 1.0, atol=1e-5)
    combined = sense_combine(ifft2c(kspace), est)
    error = np.abs(np.abs(combined) - mag) / mag.max()
    assert error[mag > 0.1 * mag.max()].max() < 0.01
    assert error.max() < 0.01
    # only the calibration centre enters, and a single slice (C, H, W) works too
    outer = kspace.copy()
    outer[..., *center_region((64, 64), 24)] = 0
    np.testing.assert_allclose(estimate_sensitivities(kspace + 5 * outer, 24), est, atol=1e-6)
    np.testing.assert_allclose(estimate_sensitivities(kspace[1], 24), est[1], atol=1e-6)


# --- noise ------------------------------------------------------------------------------------


@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_kspace_noise_has_the_configured_snr(snr_db):
    maps = birdcage_sensitivities((128, 128), 8)
    x = complex_reference(smooth_object(128, 128)[None], seed=0)[0]
    clean = fft2c(maps * x)  # (8, 128, 128)
    noisy = add_kspace_noise(clean, snr_db, np.random.default_rng(1))
    assert noisy.dtype == np.complex64 and noisy.shape == clean.shape
    assert measured_snr_db(clean, noisy) == pytest.approx(snr_db, abs=0.2)
    noise = (noisy - clean).astype(np.complex128)
    var_re, var_im = noise.real.var(), noise.imag.var()
    assert var_re / var_im == pytest.approx(1.0, abs=0.03)
    assert abs(np.mean(noise.real * noise.imag)) < 0.02 * var_re  # uncorrelated parts
    expected = np.mean(np.abs(clean) ** 2) / 10 ** (snr_db / 10)
    assert var_re + var_im == pytest.approx(expected, rel=0.02)


def test_kspace_noise_with_a_given_signal_power_is_seeded():
    clean = np.zeros((2, 16, 16), dtype=np.complex64)  # P must come from the caller here
    a = add_kspace_noise(clean, 20.0, np.random.default_rng(7), signal_power=4.0)
    b = add_kspace_noise(clean, 20.0, np.random.default_rng(7), signal_power=4.0)
    np.testing.assert_array_equal(a, b)
    assert np.mean(np.abs(a) ** 2) == pytest.approx(4.0 / 100, rel=0.15)
    with pytest.raises(SsimreconError, match="signal_power"):
        add_kspace_noise(clean, 20.0, np.random.default_rng(7))
