"""The training step's parts: no per-batch ``nonzero()``, the instance-norm kernel switch, fused
Adam only on CUDA, TF32 and autotuning only inside ``cuda_fast_math``, and ``train_step``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssimrecon.functional.losses import build_loss
from ssimrecon.kspace.mask import load_mask
from ssimrecon.nn.unet import InstanceNorm2d, set_instance_norm_kernel
from ssimrecon.training.dataset import SliceDataset, make_loader
from ssimrecon.training.step import (
    cuda_fast_math,
    make_optimizer,
    prepare_batch,
    train_step,
    training_model,
)
from tests.helpers.shards import mask_path_of, write_test_shards

MODEL = {"base_channels": 4, "depth": 2}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SliceDataset:
    shards = write_test_shards(tmp_path_factory.mktemp("shards"), n_subjects=1, n_slices=4)
    return SliceDataset(shards, load_mask(mask_path_of(shards))[0])


def test_prepare_batch_uses_the_datasets_flat_index_without_nonzero(
    dataset: SliceDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``nonzero()`` reads a device value back (a host sync per batch on CUDA); the sampled
    positions are found once, when the dataset is built."""
    mask = dataset.mask.numpy()
    np.testing.assert_array_equal(dataset.flat_index.numpy(), np.flatnonzero(mask))
    batch = next(iter(make_loader(dataset, 2)))

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("nonzero() called per batch")

    monkeypatch.setattr(torch.Tensor, "nonzero", forbidden)
    monkeypatch.setattr(torch, "nonzero", forbidden)
    x, target, data_range = prepare_batch(
        batch, torch.device("cpu"), dataset.flat_index, dataset.shape
    )
    assert x.shape == target.shape == (2, 1, *dataset.shape) and data_range.shape == (2,)
    with pytest.raises(ValueError, match="mask has"):
        prepare_batch(batch, torch.device("cpu"), dataset.flat_index[:-1], dataset.shape)


def test_instance_norm_kernels_agree_and_share_weights() -> None:
    torch.manual_seed(0)
    model = training_model(MODEL, torch.device("cpu"), True, "project")
    x = torch.rand(2, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    keys = set(model.state_dict())
    with torch.no_grad():
        ours = model(x)
        set_instance_norm_kernel(model, "torch")
        theirs = model(x)
    norms = [m for m in model.modules() if isinstance(m, InstanceNorm2d)]
    assert norms and all(m.kernel == "torch" for m in norms)
    assert set(model.state_dict()) == keys
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match="training.instance_norm"):
        set_instance_norm_kernel(model, "cudnn")


def test_adam_is_fused_only_on_cuda() -> None:
    model = torch.nn.Linear(2, 2)
    assert not make_optimizer(model, 1e-3, torch.device("cpu")).defaults.get("fused")


def test_cuda_fast_math_sets_tf32_and_autotuning_only_inside() -> None:
    before = (
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    torch.backends.cudnn.allow_tf32 = False
    try:
        with cuda_fast_math(False):
            assert torch.get_float32_matmul_precision() == before[2]
            assert torch.backends.cudnn.allow_tf32 is False
        with cuda_fast_math(True):
            assert torch.get_float32_matmul_precision() == "high"
            assert torch.backends.cudnn.benchmark and torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.get_float32_matmul_precision() == before[2]
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = before[:2]
        torch.set_float32_matmul_precision(before[2])


def test_train_step_returns_device_losses_and_scales_the_gradient() -> None:
    """``loss_scale`` scales the gradient (a rank's share of the global batch), not the reported
    loss; losses come back as tensors (nothing read on the host)."""
    terms = ("mse", "dssim")
    loss_fn = build_loss({"mse": 1.0, "dssim": 0.1})
    g = torch.Generator().manual_seed(1)
    batch = (torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g))
    grads = []
    for scale in (1.0, 2.0):
        torch.manual_seed(0)
        model = training_model(MODEL, torch.device("cpu"), False, "project")
        opt = torch.optim.SGD(model.parameters(), lr=0.0)  # keep the weights: compare gradients
        total, parts = train_step(
            model,
            opt,
            loss_fn,
            (*batch, torch.ones(2)),
            terms,
            bf16=False,
            channels_last=False,
            loss_scale=scale,
        )
        assert isinstance(total, torch.Tensor) and total.dim() == 0 and not total.requires_grad
        assert parts.shape == (2,)
        assert float(total) == pytest.approx(float(parts[0] + 0.1 * parts[1]), rel=1e-6)
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    torch.testing.assert_close(grads[1], 2 * grads[0])
