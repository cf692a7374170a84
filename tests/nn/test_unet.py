"""U-Net: shapes, parameter count vs a closed form, residual identity at initialisation, the
decoder's checkerboard (period-2) artefact, input checks, the project's InstanceNorm2d against
torch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssimrecon.errors import SsimreconError
from ssimrecon.nn.unet import InstanceNorm2d, UNet, count_parameters


def closed_form_parameters(
    base: int,
    depth: int,
    convs: int,
    cin: int = 1,
    cout: int = 1,
    norm: str = "instance",
    upsample: str = "transpose",
) -> int:
    """Parameters of the U-Net derived by hand.

    c_l = base * 2**l.  A 3x3 conv a->b has 9ab weights, plus b biases only without normalisation;
    instance (affine) and batch norm add 2b parameters.  Encoder level l and the bottom (l = depth):
    conv(c_{l-1} -> c_l) + (convs-1) conv(c_l -> c_l), with c_{-1} = cin.  Decoder level l:
    ConvTranspose 2x2 c_{l+1} -> c_l (4 c_{l+1} c_l + c_l), conv(2 c_l -> c_l) + (convs-1) conv(c_l
    -> c_l); with ``resize_conv`` the ConvTranspose is a 3x3 conv c_{l+1} -> c_l with bias
    (9 c_{l+1} c_l + c_l). Head: 1x1 conv c_0 -> cout (c_0 cout + cout).
    """
    extra = 1 if norm == "none" else 2

    def conv(a: int, b: int) -> int:
        return 9 * a * b + extra * b

    c = [base * 2**level for level in range(depth + 1)]
    total = c[0] * cout + cout
    for level in range(depth + 1):
        total += conv(cin if level == 0 else c[level - 1], c[level]) + (convs - 1) * conv(
            c[level], c[level]
        )
    for level in range(depth):
        kernel = 4 if upsample == "transpose" else 9
        total += kernel * c[level + 1] * c[level] + c[level]
        total += conv(2 * c[level], c[level]) + (convs - 1) * conv(c[level], c[level])
    return total


@pytest.mark.parametrize(
    "base, depth, convs, norm",
    [
        (64, 4, 3, "instance"),
        (32, 4, 3, "none"),
        (8, 3, 2, "batch"),
        (4, 1, 1, "instance"),
        (16, 2, 3, "none"),
    ],
)
def test_parameter_count_matches_closed_form(base: int, depth: int, convs: int, norm: str) -> None:
    for upsample in ("transpose", "resize_conv"):
        model = UNet(
            base_channels=base, depth=depth, convs_per_stage=convs, norm=norm, upsample=upsample
        )
        expected = closed_form_parameters(base, depth, convs, norm=norm, upsample=upsample)
        assert count_parameters(model) == expected


def test_paper_configuration_size() -> None:
    """Paper: 4 pooling stages, 3 convs each, 64 channels first, 1024 at the bottom (~46.7M
    parameters)."""
    model = UNet()
    assert model.model_config == {
        "in_channels": 1,
        "out_channels": 1,
        "base_channels": 64,
        "depth": 4,
        "convs_per_stage": 3,
        "residual": False,
        "norm": "instance",
        "upsample": "transpose",
    }
    assert count_parameters(model) == 46_746_433
    assert max(m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)) == 1024


@pytest.mark.parametrize(
    "base, depth, shape",
    [(4, 1, (2, 1, 6, 10)), (8, 2, (1, 1, 16, 24)), (4, 3, (3, 1, 32, 8)), (2, 4, (1, 1, 48, 32))],
)
def test_output_shape(base: int, depth: int, shape: tuple[int, ...]) -> None:
    model = UNet(base_channels=base, depth=depth, convs_per_stage=2)
    out = model(torch.rand(shape))
    assert out.shape == shape
    multi = UNet(in_channels=2, out_channels=3, base_channels=base, depth=depth)
    assert multi(torch.rand(shape[0], 2, *shape[2:])).shape == (shape[0], 3, *shape[2:])


@pytest.mark.parametrize("upsample", ["transpose", "resize_conv"])
def test_initialised_residual_network_reproduces_its_input(upsample: str) -> None:
    """The residual head starts at zero: the new network is the identity on its input (the
    zero-filled image), whatever the seed; the first optimiser step moves it off the identity."""
    for seed in range(3):
        torch.manual_seed(seed)
        x = torch.rand(2, 1, 16, 16) * 3
        model = UNet(base_channels=4, depth=2, residual=True, upsample=upsample)
        assert torch.equal(model(x), x)
        target = torch.rand_like(x)
        torch.nn.functional.mse_loss(model(x), target).backward()
        assert model.head.weight.grad.abs().sum() > 0  # the zero head still learns
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        assert not torch.allclose(model(x), x)


def test_residual_identity_and_not_identity_otherwise() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    model = UNet(base_channels=4, depth=2, residual=True)
    with torch.no_grad():
        model.head.weight.normal_()
        assert not torch.allclose(model(x), x)
        model.head.weight.zero_()
        model.head.bias.zero_()
    assert torch.equal(model(x), x)
    plain = UNet(base_channels=4, depth=2, residual=False)
    with torch.no_grad():
        plain.head.weight.zero_()
        plain.head.bias.zero_()
    assert torch.equal(plain(x), torch.zeros_like(x))


def _smooth_image(n: int = 64) -> torch.Tensor:
    """(1, 1, n, n): two Gaussian blobs, no period-2 content (energy there ~1e-10 of the total)."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    blobs = torch.exp(-(x**2 + y**2) / 0.3) + 0.5 * torch.exp(
        -((x - 0.4) ** 2 + (y + 0.3) ** 2) / 0.05
    )
    return blobs[None, None]


def period2_energy(image: np.ndarray) -> float:
    """Fraction of the (mean-removed) spectral energy of a square (n, n) image in the bands of
    the period-2 frequencies: rows or columns n/2 - 1 .. n/2 + 1 of the unshifted 2D DFT (a
    checkerboard, or stripes two pixels apart, modulated by the image)."""
    f = np.abs(np.fft.fft2(image - image.mean())) ** 2
    h = image.shape[-1] // 2
    band = np.zeros(f.shape, dtype=bool)
    band[h - 1 : h + 2, :] = True
    band[:, h - 1 : h + 2] = True
    return float(f[band].sum() / f.sum())


def test_resize_conv_decoder_has_no_checkerboard_and_transpose_has() -> None:
    """At initialisation (random weights, no residual: the output is the network's own), a smooth
    input comes out of the ConvTranspose2d(k=2, s=2) decoder with a fifth of its energy at the
    period-2 frequencies (measured 0.16-0.28 over these seeds), and out of the resize_conv decoder
    with about a tenth of that (0.016-0.028; zero padding and ReLUs leave a little)."""
    x = _smooth_image()
    assert period2_energy(x[0, 0].numpy()) < 1e-6  # the reference has none
    energies = {}
    for upsample in ("transpose", "resize_conv"):
        values = []
        for seed in range(4):
            torch.manual_seed(seed)
            model = UNet(base_channels=8, depth=3, upsample=upsample).eval()
            with torch.no_grad():
                values.append(period2_energy(model(x)[0, 0].numpy()))
        energies[upsample] = values
    assert min(energies["transpose"]) > 0.1
    assert max(energies["resize_conv"]) < 0.05
    assert max(energies["resize_conv"]) < min(energies["transpose"]) / 3


def test_instance_norm_is_batch_size_independent() -> None:
    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=2).train()
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(model(x)[:1], model(x[:1]))


def test_errors() -> None:
    model = UNet(base_channels=4, depth=3)
    with pytest.raises(SsimreconError, match=r"20x16.*2\*\*depth = 8.*depth 3"):
        model(torch.rand(1, 1, 20, 16))
    with pytest.raises(SsimreconError, match="expected input"):
        model(torch.rand(1, 2, 16, 16))
    with pytest.raises(SsimreconError, match="model.norm"):
        UNet(norm="group")
    with pytest.raises(SsimreconError, match="model.upsample"):
        UNet(upsample="pixel_shuffle")
    with pytest.raises(SsimreconError, match="model.depth"):
        UNet(depth=0)
    with pytest.raises(SsimreconError, match="model.residual"):
        UNet(in_channels=2, out_channels=1, residual=True)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(3, 5, 8, 12), (2, 16, 16, 16), (1, 1, 4, 4)])
def test_instance_norm_equals_torch_forward_and_gradients(
    shape: tuple[int, int, int, int], channels_last: bool
) -> None:
    torch.manual_seed(0)
    reference = torch.nn.InstanceNorm2d(
        shape[1], affine=True
    )  # track_running_stats=False, eps 1e-5
    with torch.no_grad():
        reference.weight.normal_()
        reference.bias.normal_()
    ours = InstanceNorm2d(shape[1])
    assert ours.state_dict().keys() == reference.state_dict().keys()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(*shape) * 3 + 2  # a mean far from 0 as after a convolution
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y_ours = reference(x_ref), ours(x_ours)
    torch.testing.assert_close(y_ours, y_ref, rtol=1e-5, atol=1e-5)
    if channels_last and shape[1] > 1:
        assert y_ours.is_contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(y_ref)
    y_ref.backward(grad)
    y_ours.backward(grad)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.bias.grad, reference.bias.grad, rtol=1e-5, atol=1e-5)
    ours.eval()  # no running statistics: evaluation is the same computation
    torch.testing.assert_close(ours(x), reference.eval()(x), rtol=1e-5, atol=1e-5)


def test_instance_norm_gradcheck_and_bf16() -> None:
    from ssimrecon.nn.unet import _InstanceNormFn

    torch.manual_seed(0)
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    for fmt in (
        torch.contiguous_format,
        torch.channels_last,
    ):  # the custom function in both layouts
        x = (
            torch.randn(2, 3, 4, 5, dtype=torch.float64)
            .contiguous(memory_format=fmt)
            .requires_grad_()
        )
        assert torch.autograd.gradcheck(
            lambda x, w, b: _InstanceNormFn.apply(x, w, b, 1e-5), (x, w, b)
        )
        ref = torch.nn.functional.instance_norm(x, weight=w, bias=b, eps=1e-5)
        torch.testing.assert_close(_InstanceNormFn.apply(x, w, b, 1e-5), ref)
    # bf16 channels_last in (as under CPU autocast) -> bf16 channels_last out, close to the
    # fp32 result
    norm = InstanceNorm2d(8)
    x = (
        (torch.randn(2, 8, 32, 32) * 3 + 2)
        .to(torch.bfloat16)
        .contiguous(memory_format=torch.channels_last)
    )
    x.requires_grad_()
    y = norm(x)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)
    expected = torch.nn.functional.instance_norm(
        x.detach().float(), weight=norm.weight.detach(), bias=norm.bias.detach()
    )
    torch.testing.assert_close(y.float(), expected, rtol=0.02, atol=0.03)
    y.float().square().sum().backward()
    assert (
        x.grad is not None
        and x.grad.dtype == torch.bfloat16
        and norm.weight.grad.dtype == torch.float32
    )


def test_weights_of_a_torch_instance_norm_unet_load_and_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bundles and checkpoints saved while the U-Net used nn.InstanceNorm2d load unchanged."""
    import ssimrecon.nn.unet as unet

    original = unet._norm
    monkeypatch.setattr(
        unet,
        "_norm",
        lambda kind, ch: (
            torch.nn.InstanceNorm2d(ch, affine=True) if kind == "instance" else original(kind, ch)
        ),
    )
    torch.manual_seed(0)
    old = UNet(base_channels=4, depth=2)
    with torch.no_grad():
        for name, p in old.named_parameters():
            if ".1." in name:  # the norms: not the identity
                p.normal_()
    monkeypatch.setattr(unet, "_norm", original)
    new = UNet(base_channels=4, depth=2)
    assert isinstance(new.down[0][1], InstanceNorm2d)
    new.load_state_dict(old.state_dict(), strict=True)
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(new(x), old(x), rtol=1e-5, atol=1e-5)
