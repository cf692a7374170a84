"""SSIM in torch vs scikit-image, gradients, dtypes/devices/memory formats, and the two filter
paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter, gaussian_filter1d
from skimage import data
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

from ssimrecon.errors import SsimreconError
from ssimrecon.functional.ssim import _filter_adjoint, _filter_valid, gaussian_taps, ssim, ssim_map


def _images() -> dict[str, np.ndarray]:
    """Real grey images scaled to [0, 1] (float64); cropped to keep tests fast."""
    imgs = {
        "camera": data.camera(),
        "astronaut": rgb2gray(data.astronaut()),
        "moon": data.moon(),
        "coins": data.coins(),
    }
    out = {}
    for name, img in imgs.items():
        img = img.astype(np.float64)
        out[name] = (img / img.max())[:256, :300]
    return out


IMAGES = _images()


def _degrade(ref: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(gaussian_filter(ref, 1.2) + 0.04 * rng.standard_normal(ref.shape), 0, None)


def _sk(ref: np.ndarray, est: np.ndarray, data_range: float) -> float:
    return structural_similarity(
        ref,
        est,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
    )


def _t(a: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)[None, None]


def test_taps_match_scipy_gaussian_filter() -> None:
    taps = gaussian_taps()
    assert taps.shape == (11,)
    impulse = np.zeros(31)
    impulse[15] = 1.0
    response = gaussian_filter1d(impulse, 1.5, truncate=3.5, mode="constant")
    np.testing.assert_allclose(taps.numpy(), response[10:21], rtol=0, atol=1e-15)
    assert gaussian_taps(sigma=1.0, truncate=4.0).shape == (9,)
    assert float(gaussian_taps().sum()) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_skimage_on_real_images(name: str, seed: int) -> None:
    ref = IMAGES[name]
    est = _degrade(ref, seed)
    ref, est = 0.7 * ref, 0.7 * est  # a data range that float32 cannot represent exactly
    data_range = float(ref.max())
    expected = _sk(ref, est, data_range)
    assert 0.2 < expected < 0.99  # a meaningful, non-trivial comparison
    got64 = ssim(_t(est), _t(ref), data_range).item()
    got32 = ssim(_t(est, torch.float32), _t(ref, torch.float32), data_range).item()
    assert got64 == pytest.approx(expected, abs=1e-10)
    assert got32 == pytest.approx(expected, abs=1e-5)


def test_map_shape_symmetry_and_identity() -> None:
    ref, est = _t(IMAGES["camera"][:64, :80]), _t(_degrade(IMAGES["camera"][:64, :80], 3))
    m = ssim_map(est, ref, 1.0)
    assert m.shape == (1, 1, 54, 70)
    torch.testing.assert_close(m, ssim_map(ref, est, 1.0), rtol=0, atol=1e-14)
    torch.testing.assert_close(ssim(ref, ref, 1.0), torch.tensor(1.0, dtype=torch.float64))
    assert ssim(est, ref, 1.0).item() < 0.99


def test_per_image_data_range_and_reduction() -> None:
    refs = [IMAGES["moon"][:96, :96], 0.5 * IMAGES["coins"][:96, :96]]
    ests = [_degrade(r, i) for i, r in enumerate(refs)]
    ranges = [float(r.max()) for r in refs]
    x = torch.cat([_t(e) for e in ests])
    y = torch.cat([_t(r) for r in refs])
    per_image = ssim(x, y, torch.tensor(ranges, dtype=torch.float64), reduction="none")
    expected = [_sk(r, e, L) for r, e, L in zip(refs, ests, ranges)]
    assert per_image.shape == (2,)
    np.testing.assert_allclose(per_image.numpy(), expected, rtol=0, atol=1e-10)
    assert ssim(x, y, torch.tensor(ranges, dtype=torch.float64)).item() == pytest.approx(
        np.mean(expected), abs=1e-10
    )
    # a scalar data range applies to every image
    np.testing.assert_allclose(
        ssim(x, y, 2.0, reduction="none").numpy(),
        [_sk(r, e, 2.0) for r, e in zip(refs, ests)],
        atol=1e-10,
    )


def test_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.rand(2, 1, 16, 16, dtype=torch.float64, generator=gen, requires_grad=True)
    rng = torch.tensor([1.0, 0.6], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: ssim_map(a, b, rng), (x, y))
    assert torch.autograd.gradcheck(lambda a: ssim(a, y.detach(), 0.8, reduction="none"), (x,))


def test_gradient_matches_autograd_reference() -> None:
    """The analytic backward equals autograd through a plain conv2d implementation."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 24, 20, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.rand(3, 1, 24, 20, dtype=torch.float64, generator=gen)
    taps = gaussian_taps()
    w = (taps[:, None] * taps[None, :])[None, None]

    def reference(a: torch.Tensor, b: torch.Tensor, L: float) -> torch.Tensor:
        f = lambda t: torch.nn.functional.conv2d(t, w)  # noqa: E731
        ux, uy = f(a), f(b)
        vx, vy, cxy = f(a * a) - ux**2, f(b * b) - uy**2, f(a * b) - ux * uy
        c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
        s = (2 * ux * uy + c1) * (2 * cxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        return s.mean()

    (g_ref,) = torch.autograd.grad(reference(x, y, 1.3), x)
    (g_ours,) = torch.autograd.grad(ssim(x, y, 1.3), x)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-12)
    # gradient w.r.t. the second argument, too (symmetry of SSIM)
    y.requires_grad_(True)
    _, gy = torch.autograd.grad(ssim(y, x, 1.3), (y, x))
    torch.testing.assert_close(gy, g_ref, rtol=1e-9, atol=1e-12)


def test_conv_and_shift_add_paths_agree_and_adjoint() -> None:
    gen = torch.Generator().manual_seed(2)
    m = torch.rand(2, 5, 30, 27, dtype=torch.float64, generator=gen)
    fast = _filter_valid(m, use_conv=False)
    conv = _filter_valid(m, use_conv=True)
    assert fast.shape == (2, 5, 20, 17)
    torch.testing.assert_close(fast, conv, rtol=0, atol=1e-13)
    p = torch.rand(2, 5, 20, 17, dtype=torch.float64, generator=gen)
    for use_conv in (False, True):
        back = _filter_adjoint(p, use_conv=use_conv)
        assert back.shape == m.shape
        # <F m, p> == <m, F^T p>
        lhs = (_filter_valid(m, use_conv=use_conv) * p).sum()
        rhs = (m * back).sum()
        assert lhs.item() == pytest.approx(rhs.item(), rel=1e-12)


def test_memory_formats_dtypes_and_autocast() -> None:
    ref32 = _t(IMAGES["astronaut"][:64, :64], torch.float32).repeat(2, 1, 1, 1)
    est32 = _t(_degrade(IMAGES["astronaut"][:64, :64], 5), torch.float32).repeat(2, 1, 1, 1)
    base = ssim(est32, ref32, 1.0, reduction="none")
    assert base.dtype == torch.float32
    cl = ssim(
        est32.to(memory_format=torch.channels_last),
        ref32.to(memory_format=torch.channels_last),
        1.0,
        "none",
    )
    torch.testing.assert_close(cl, base)
    big = torch.zeros(2, 1, 64, 128)
    big[..., ::2] = est32
    strided = big[..., ::2]  # non-contiguous view with the same values
    assert not strided.is_contiguous()
    torch.testing.assert_close(ssim(strided, ref32, 1.0, "none"), base)
    half = ssim(est32.half(), ref32.half(), 1.0)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(base.mean().item(), abs=2e-3)
    x = est32.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = ssim(x, ref32, 1.0)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(base.mean().item(), abs=1e-6)
    value.backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()


def test_errors() -> None:
    a = torch.rand(1, 1, 10, 32)
    with pytest.raises(SsimreconError, match="at least 11x11"):
        ssim(a, a, 1.0)
    b = torch.rand(1, 1, 16, 16)
    with pytest.raises(SsimreconError, match="equal shape"):
        ssim(b, torch.rand(1, 1, 16, 17), 1.0)
    with pytest.raises(SsimreconError, match="reduction"):
        ssim(b, b, 1.0, reduction="sum")
    with pytest.raises(SsimreconError, match="positive"):
        ssim(b, b, 0.0)
    with pytest.raises(SsimreconError, match="data_range"):
        ssim(b, b, torch.tensor([1.0, 2.0]))
