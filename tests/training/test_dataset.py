"""SliceDataset (sampled k-space points), to_network_input, EpochSampler and make_loader on small
synthetic shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ssimrecon.errors import ShardError
from ssimrecon.kspace.fft import ifft2c
from ssimrecon.training.dataset import (
    EpochSampler,
    SliceDataset,
    make_loader,
    scatter_samples,
    to_network_input,
)
from tests.helpers import write_test_shards


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    return write_test_shards(tmp_path, n_subjects=2, n_slices=5, empty=1)


def test_filters_near_empty_slices_by_slice_signal(shards: list[Path]) -> None:
    everything = SliceDataset(shards, min_signal_fraction=0.0)
    kept = SliceDataset(shards, min_signal_fraction=0.05)
    assert len(everything) == 10 and everything.num_total == 10
    assert len(kept) == 8
    assert all(
        slice_ != 4 for _, slice_ in kept.index
    )  # the blank last slice of each shard is dropped
    with pytest.raises(ShardError) as info:
        SliceDataset(shards, min_signal_fraction=1.0)
    assert str(shards[0]) in str(info.value) and str(shards[1]) in str(info.value)


def test_item_shapes_dtypes_and_values(shards: list[Path]) -> None:
    ds = SliceDataset(shards, min_signal_fraction=0.05)
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
        mask = f["mask"][()].astype(bool)
        np.testing.assert_array_equal(ds.mask.numpy(), mask)
        np.testing.assert_array_equal(
            torch.view_as_complex(item["samples"]).numpy(), f["kspace"][1][mask]
        )
        full = scatter_samples(item["samples"][None], ds.mask)[0].numpy()
        np.testing.assert_array_equal(
            full, f["kspace"][1]
        )  # the unsampled points were zero in the shard
        np.testing.assert_array_equal(item["target"][0].numpy(), f["target"][1])
        assert float(item["data_range"]) == pytest.approx(float(f.attrs["data_range"]))


def test_zero_filled_input_matches_numpy(shards: list[Path]) -> None:
    import h5py

    ds = SliceDataset(shards)
    batch = next(iter(make_loader(ds, batch_size=3)))
    x = to_network_input(batch["samples"], ds.mask)
    assert x.shape == (3, 1, 32, 32) and x.dtype == torch.float32
    with h5py.File(shards[int(batch["subject"][0])]) as f:
        kspace = np.stack([f["kspace"][int(i)] for i in batch["slice"]])
    assert batch["subject"].tolist() == [0, 0, 0]
    expected = np.abs(ifft2c(kspace))  # from the shard's full k-space plane
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


def test_worker_processes_read_the_same_items(shards: list[Path]) -> None:
    ds = SliceDataset(shards, min_signal_fraction=0.05)
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


def test_batch_reads_equal_item_reads(shards: list[Path]) -> None:
    ds = SliceDataset(shards, min_signal_fraction=0.05)
    indices = [6, 0, 3, 7]
    for whole, one in zip(ds.__getitems__(indices), (ds[i] for i in indices)):
        assert whole.keys() == one.keys()
        for key, value in whole.items():
            assert torch.equal(value, one[key]) if torch.is_tensor(value) else value == one[key]
    ds.close()


def test_shards_with_different_masks_are_refused(tmp_path: Path) -> None:
    same = write_test_shards(tmp_path / "a", n_subjects=2)
    other = write_test_shards(tmp_path / "b", n_subjects=1, mask_seed=8)
    with pytest.raises(ShardError, match="sampling mask differs") as info:
        SliceDataset([*same, *other])
    assert str(other[0]) in str(info.value) and str(same[0]) in str(info.value)
