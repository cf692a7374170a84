"""SliceDataset (sampled k-space points), to_network_input, EpochSampler and make_loader on small
synthetic shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ssimrecon.errors import ShardError
from ssimrecon.kspace.fft import fft2c, ifft2c
from ssimrecon.kspace.mask import load_mask, variable_density_mask
from ssimrecon.training.dataset import (
    EpochSampler,
    SliceDataset,
    make_loader,
    scatter_samples,
    to_network_input,
)
from tests.helpers.shards import mask_path_of, write_test_shards


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    return write_test_shards(tmp_path, n_subjects=2, n_slices=5, empty=1)


@pytest.fixture
def mask(shards: list[Path]) -> np.ndarray:
    return load_mask(mask_path_of(shards))[0]


def test_filters_near_empty_slices_by_slice_signal(shards: list[Path], mask: np.ndarray) -> None:
    everything = SliceDataset(shards, mask, min_signal_fraction=0.0)
    kept = SliceDataset(shards, mask, min_signal_fraction=0.05)
    assert len(everything) == 10 and everything.num_total == 10
    assert len(kept) == 8
    assert all(
        slice_ != 4 for _, slice_ in kept.index
    )  # the blank last slice of each shard is dropped
    with pytest.raises(ShardError) as info:
        SliceDataset(shards, mask, min_signal_fraction=1.0)
    assert str(shards[0]) in str(info.value) and str(shards[1]) in str(info.value)


def test_item_shapes_dtypes_and_values(shards: list[Path], mask: np.ndarray) -> None:
    ds = SliceDataset(shards, mask, min_signal_fraction=0.05)
    item = ds[5]  # second shard, second kept slice
    n = int(ds.mask.sum())
    assert (
        ds.mask.shape == (32, 32) and ds.mask.dtype == torch.bool and ds.num_sampled == n < 32 * 32
    )
    assert item["samples"].shape == (n, 2) and item["samples"].dtype == torch.float32
    assert item["target"].shape == (1, 32, 32) and item["target"].dtype == torch.float32
    assert item["data_range"].shape == () and item["data_range"].dtype == torch.float32
    assert (item["subject"], item["slice"]) == (1, 1)
    assert float(item["data_range"]) >= float(item["target"].max()) > 0  # the volume's maximum
    import h5py

    with h5py.File(shards[1]) as f:
        np.testing.assert_array_equal(ds.mask.numpy(), mask)
        kspace = fft2c(f["target"][1]) * mask  # the mask applied on reading
        np.testing.assert_allclose(
            torch.view_as_complex(item["samples"]).numpy(), kspace[mask], atol=1e-5
        )
        full = scatter_samples(item["samples"][None], ds.flat_index, ds.shape)[0].numpy()
        np.testing.assert_allclose(full, kspace, atol=1e-5)  # zero where not sampled
        np.testing.assert_array_equal(item["target"][0].numpy(), f["target"][1])
        assert float(item["data_range"]) == pytest.approx(float(f.attrs["data_range"]))


def test_zero_filled_input_matches_numpy(shards: list[Path], mask: np.ndarray) -> None:
    import h5py

    ds = SliceDataset(shards, mask)
    batch = next(iter(make_loader(ds, batch_size=3)))
    x = to_network_input(batch["samples"], ds.flat_index, ds.shape)
    assert x.shape == (3, 1, 32, 32) and x.dtype == torch.float32
    with h5py.File(shards[int(batch["subject"][0])]) as f:
        kspace = np.stack([fft2c(f["target"][int(i)]) * mask for i in batch["slice"]])
    assert batch["subject"].tolist() == [0, 0, 0]
    expected = np.abs(ifft2c(kspace))  # from the full k-space plane under the mask
    np.testing.assert_allclose(x[:, 0].numpy(), expected, rtol=1e-5, atol=1e-6)
    # undersampling artefacts: the zero-filled image is not the target
    assert float((x - batch["target"]).abs().max()) > 0.05


def test_sampler_order_depends_only_on_seed_and_epoch() -> None:
    a, b, c = EpochSampler(50, seed=3), EpochSampler(50, seed=3), EpochSampler(50, seed=4)
    for s in (a, b, c):
        s.set_epoch(2)
    assert list(a) == list(b)
    assert sorted(a) == list(range(50))
    assert list(a) != list(c)
    order2 = list(a)
    a.set_epoch(3)
    assert list(a) != order2
    a.set_epoch(2, skip=20)  # resume at batch 5 of size 4
    assert list(a) == order2[20:] and len(a) == 30
    capped = EpochSampler(50, seed=3, max_samples=8)
    capped.set_epoch(2)
    assert list(capped) == order2[:8] and len(capped) == 8


def test_worker_processes_read_the_same_items(shards: list[Path], mask: np.ndarray) -> None:
    ds = SliceDataset(shards, mask, min_signal_fraction=0.05)
    _ = ds[0]  # the main process holds open handles before the workers fork
    sampler = EpochSampler(len(ds), seed=1)
    serial = [b for b in make_loader(ds, 3, sampler, num_workers=0)]
    parallel = [b for b in make_loader(ds, 3, sampler, num_workers=2)]
    assert len(serial) == len(parallel) == 3
    for s, p in zip(serial, parallel):
        assert torch.equal(s["samples"], p["samples"]) and torch.equal(s["target"], p["target"])
        np.testing.assert_array_equal(s["data_range"], p["data_range"])
        assert (
            s["subject"].tolist() == p["subject"].tolist()
            and s["slice"].tolist() == p["slice"].tolist()
        )
    ds.close()


def test_batch_reads_equal_item_reads(shards: list[Path], mask: np.ndarray) -> None:
    ds = SliceDataset(shards, mask, min_signal_fraction=0.05)
    indices = [6, 0, 3, 7]
    for whole, one in zip(ds.__getitems__(indices), (ds[i] for i in indices)):
        assert whole.keys() == one.keys()
        for key, value in whole.items():
            assert torch.equal(value, one[key]) if torch.is_tensor(value) else value == one[key]
    ds.close()


def test_the_same_shards_serve_another_acceleration(shards: list[Path], mask: np.ndarray) -> None:
    """Shards hold no mask: a dataset with an R = 8 mask samples the same targets at its own
    points (the batch path and the item path alike)."""
    sparse = variable_density_mask(mask.shape, 8.0, center_size=4, seed=3)
    a, b = SliceDataset(shards, mask), SliceDataset(shards, sparse)
    assert b.num_sampled == round(sparse.size / 8) < a.num_sampled
    for item in (b[2], b.__getitems__([2])[0]):
        kspace = fft2c(item["target"][0].numpy()) * sparse
        np.testing.assert_allclose(
            torch.view_as_complex(item["samples"]).numpy(), kspace[sparse], atol=1e-5
        )
        assert torch.equal(item["target"], a[2]["target"])
    with pytest.raises(ShardError, match=r"\(16, 16\) does not match the 32x32"):
        SliceDataset(shards, np.ones((16, 16), bool))
