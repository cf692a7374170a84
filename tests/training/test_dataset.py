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


def test_network_scale_comes_from_the_zero_filled_image_alone(tmp_path: Path) -> None:
    """A scanner gives only undersampled k-space, in its own units: its zero-filled image gets the
    input scale training used for the same volume (up to the units), so the network input is the
    same, and no statistic of the reference reaches the network."""
    from ssimrecon.evaluation.inference import predict_slices
    from ssimrecon.kspace.fft import zero_filled_magnitude
    from ssimrecon.kspace.preprocess import (
        input_scale,
        load_canonical,
        simulate_kspace,
        volume_to_slices,
    )
    from ssimrecon.kspace.shards import ShardReader, make_shard
    from ssimrecon.nn.unet import UNet
    from ssimrecon.training.step import prepare_batch
    from tests.helpers.shards import preprocessing
    from tests.helpers.volumes import smooth_head, write_nifti

    prep = preprocessing(readout_axis=2, image_size=(32, 32))
    volume_path = write_nifti(tmp_path / "head.nii.gz", smooth_head((30, 30, 12), seed=3))
    shard = tmp_path / "head.h5"
    make_shard(volume_path, "head", prep, shard)
    mask = variable_density_mask((32, 32), 4.0, center_size=4, seed=1)
    dataset = SliceDataset([shard], mask)
    trained_scale = dataset.input_scales[0]
    with ShardReader(shard, mask) as reader:
        reference_scale = float(reader.attrs["scale"])
        assert reader.input_scale() == pytest.approx(trained_scale)
    # the scale is not the reference's: zero-filling spreads and loses energy at R = 4
    assert abs(trained_scale - 1.0) > 0.01

    # the scanner: the same volume in other units, undersampled; nothing but its k-space is used
    units = 7.3
    volume, _ = load_canonical(volume_path)
    raw, _ = volume_to_slices(volume * np.float32(units), prep)
    scanner_kspace = simulate_kspace(np.maximum(raw, 0), mask, None)
    zero_filled = zero_filled_magnitude(scanner_kspace)
    scanner_scale = input_scale(zero_filled, prep.scale_percentile)
    assert scanner_scale == pytest.approx(trained_scale * units * reference_scale, rel=1e-4)

    batch = collate_slices_of(dataset, range(len(dataset)))
    x, target, data_range = prepare_batch(batch, torch.device("cpu"), dataset.flat_index, (32, 32))
    positions = [s for _, s in dataset.index]
    np.testing.assert_allclose(
        x[:, 0].numpy(), zero_filled[positions] / scanner_scale, rtol=1e-4, atol=1e-5
    )
    # training's target and data_range are on the same normalised axis as its input
    assert float(data_range[0]) == pytest.approx(dataset.data_ranges[0] / trained_scale)
    assert float(target.max()) <= float(data_range[0]) * (1 + 1e-6)

    # inference on the scanner's k-space: model(zero_filled / scale) * scale; the initialised
    # residual network (the identity) hands the zero-filled image back in the scanner's units
    identity = UNet(base_channels=2, depth=1, residual=True)
    out = predict_slices(identity, scanner_kspace, 4, "cpu", input_scale=scanner_scale)
    np.testing.assert_allclose(out, zero_filled, rtol=1e-4, atol=1e-3)


def collate_slices_of(dataset: SliceDataset, indices: range) -> dict:
    """One batch of ``dataset``'s items ``indices`` (collate_slices of __getitems__)."""
    from ssimrecon.training.dataset import collate_slices

    return collate_slices(dataset.__getitems__(list(indices)))
