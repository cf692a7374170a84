"""Shards of measured k-space (fastMRI multi-coil files of the published layout, built by
tests.helpers.fastmri): the RSS target equals ``reconstruction_rss``, the fully sampled coil k-space
read back reproduces it, per-slice sensitivities, geometry, coil compression, QC rows and the
one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssimrecon.data.sources import list_source
from ssimrecon.errors import ShardError, SsimreconError, VolumeError
from ssimrecon.kspace.coils import rss
from ssimrecon.kspace.fastmri_source import (
    calibration_size_of,
    compress_coils,
    inspect_fastmri,
    make_fastmri_shard,
    select_acquisitions,
)
from ssimrecon.kspace.fft import ifft2c
from ssimrecon.kspace.mask import variable_density_mask
from ssimrecon.kspace.shards import ShardReader, validate_shard
from tests.helpers.fastmri import write_fastmri_file
from tests.helpers.shards import preprocessing

PREP = preprocessing(
    readout_axis=2, image_size=(32, 32), forward_model="multicoil", coils=4, scale_percentile=99
)


def _shard(tmp_path: Path, **file_args) -> tuple[Path, dict]:
    source = tmp_path / "file_brain_AXT1_201_0001.h5"
    written = write_fastmri_file(source, **file_args)
    out = tmp_path / "shard.h5"
    make_fastmri_shard(source, "s1", PREP, out, calibration_size=8)
    return out, written


def test_target_is_reconstruction_rss_and_the_coils_reproduce_it(tmp_path: Path) -> None:
    out, written = _shard(tmp_path, n_slices=3, n_coils=4)
    validate_shard(out)
    full = np.ones((32, 32), bool)
    with ShardReader(out, full) as reader:
        scale = float(reader.attrs["scale"])
        target = reader.read_target()
        np.testing.assert_allclose(target * scale, written["rss"], rtol=1e-5, atol=1e-7)
        for i in range(reader.num_slices):
            kspace, slice_target = reader.read_slice(i)
            assert kspace.shape == (4, 32, 32)
            np.testing.assert_allclose(
                rss(ifft2c(kspace), axis=0), slice_target, rtol=1e-5, atol=1e-6
            )
        assert reader.per_slice_sensitivities
        assert reader.sensitivities.shape == (3, 4, 32, 32)
        assert reader.slice_sensitivities(1).shape == (4, 32, 32)
        assert float(reader.attrs["data_range"]) == pytest.approx(float(target.max()))
        assert reader.pixel_spacing == pytest.approx((220 / 32, 220 / 32))
        assert reader.native_extent == (0, 32, 0, 32)
        assert reader.slice_thickness_mm == pytest.approx(5.0)
        assert list(reader.slice_index) == [0, 1, 2]
        assert reader.attrs["source_format"] == "fastmri"
        assert reader.attrs["acquisition"] == "AXT1"
        # sensitivities normalised where the object is: sum_c |S_c|^2 = 1
        power = np.sum(np.abs(reader.sensitivities) ** 2, axis=1)
        assert np.allclose(power[power > 0], 1, atol=1e-4)
        zero_filled = reader.zero_filled(reader.read_kspace())
        assert zero_filled.shape == (3, 32, 32)
        one = reader.zero_filled(reader.read_slice(2)[0][None], [2])
        np.testing.assert_allclose(one[0], zero_filled[2], rtol=1e-5, atol=1e-6)


def test_more_coils_are_compressed_without_changing_the_target(tmp_path: Path) -> None:
    out, written = _shard(tmp_path, n_slices=2, n_coils=6)
    with ShardReader(out) as reader:
        target = reader.read_target() * float(reader.attrs["scale"])
        assert reader.read_coil_kspace(0).shape == (4, 32, 32)
        assert int(reader.attrs["file_coils"]) == 6
    np.testing.assert_allclose(target, written["rss"], rtol=1e-5, atol=1e-7)


def test_compression_keeps_the_energy_of_the_kept_components() -> None:
    rng = np.random.default_rng(0)
    images = (rng.normal(size=(2, 5, 8, 8)) + 1j * rng.normal(size=(2, 5, 8, 8))).astype("c8")
    same = compress_coils(images, 5)
    assert same is images
    fewer = compress_coils(images, 5 - 1)
    assert fewer.shape == (2, 4, 8, 8)
    assert np.sum(np.abs(fewer) ** 2) <= np.sum(np.abs(images) ** 2) * (1 + 1e-5)


def test_errors_name_the_file_and_key(tmp_path: Path) -> None:
    few = tmp_path / "few.h5"
    write_fastmri_file(few, n_slices=2, n_coils=2)
    with pytest.raises(ShardError, match=r"few\.h5.*preprocessing\.coils"):
        make_fastmri_shard(few, "few", PREP, tmp_path / "a.h5", calibration_size=8)
    test_set = tmp_path / "test.h5"
    write_fastmri_file(test_set, n_slices=2, with_mask=True, with_rss=False)
    with pytest.raises(ShardError, match=r"test\.h5.*'mask'"):
        make_fastmri_shard(test_set, "t", PREP, tmp_path / "b.h5", calibration_size=8)
    magnitude = preprocessing(readout_axis=2, image_size=(32, 32))
    with pytest.raises(SsimreconError, match="preprocessing.forward_model multicoil"):
        make_fastmri_shard(few, "few", magnitude, tmp_path / "c.h5", calibration_size=8)
    with pytest.raises(ShardError, match="MD5"):
        make_fastmri_shard(
            few, "few", PREP, tmp_path / "d.h5", calibration_size=8, source_md5="0" * 32
        )


def test_qc_rows_and_acquisition_selection(tmp_path: Path) -> None:
    for i, acquisition in enumerate(("AXT1", "AXT2", "AXT1POST")):
        write_fastmri_file(
            tmp_path / f"file_brain_{acquisition}_{i}.h5",
            n_slices=2,
            seed=i,
            acquisition=acquisition,
        )
    (tmp_path / "notes.txt").write_text("not a file of the source")
    files = list_source("fastmri", tmp_path)
    assert [f.subject for f in files] == [
        "file_brain_AXT1POST_2",
        "file_brain_AXT1_0",
        "file_brain_AXT2_1",
    ]
    kept = select_acquisitions(files, ["AXT1", "AXT1PRE", "AXT1POST"])
    assert [f.subject for f in kept] == ["file_brain_AXT1POST_2", "file_brain_AXT1_0"]
    with pytest.raises(VolumeError, match="AXFLAIR"):
        select_acquisitions(files, ["AXFLAIR"])
    # an excluded file is never opened (a broken one can be excluded), and QC then skips it
    (tmp_path / "zz_broken.h5").write_bytes(b"not hdf5")
    listed = list_source("fastmri", tmp_path)
    with pytest.raises(VolumeError, match=r"zz_broken\.h5"):
        select_acquisitions(listed, ["AXT1"])
    assert len(select_acquisitions(listed, ["AXT1"], {"zz_broken"})) == 2
    (tmp_path / "zz_broken.h5").unlink()
    row = inspect_fastmri(kept[0].file)
    assert row["shape"] == "32x32x2"
    assert row["voxel_size"] == "6.875x6.875x5"
    assert row["acquisition"] == "AXT1POST" and len(row["participant"]) == 64
    assert row["intensity_max"] > 0 and len(row["md5"]) == 32
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not hdf5")
    with pytest.raises(VolumeError, match=r"broken\.h5"):
        inspect_fastmri(broken)


def test_calibration_size_of_a_mask() -> None:
    mask = variable_density_mask((32, 32), 4.0, 8, 0)
    assert calibration_size_of(mask) >= 8
    assert calibration_size_of(np.zeros((8, 8), bool)) == 0


def test_training_items_carry_each_slices_sensitivities(tmp_path: Path) -> None:
    """The training data path: every item carries its slice's sensitivities, and the network
    input of a batch is the SENSE combination with them (the reader's zero-filled image)."""
    import torch

    from ssimrecon.training.dataset import SliceDataset, collate_slices
    from ssimrecon.training.step import BatchPhysics, prepare_batch

    out, _ = _shard(tmp_path, n_slices=3, n_coils=4)
    mask = variable_density_mask((32, 32), 4.0, 8, 0)
    data = SliceDataset([out], mask)
    assert data.per_slice_sensitivities and data.sensitivities is None
    batch = collate_slices([data[i] for i in range(len(data))])
    assert tuple(batch["sensitivities"].shape) == (len(data), 4, 32, 32, 2)
    x, _, _ = prepare_batch(
        batch, torch.device("cpu"), data.flat_index, data.shape, BatchPhysics("multicoil")
    )
    with ShardReader(out, mask) as reader:
        expected = reader.zero_filled(reader.read_kspace()) / data.input_scales[0]
    got = torch.view_as_complex(x.permute(0, 2, 3, 1).contiguous()).numpy()
    slices = [i for _, i in data.index]
    np.testing.assert_allclose(got, expected[slices], rtol=1e-4, atol=1e-5)
    from ssimrecon.nn.reconstructor import Physics, Reconstructor

    with pytest.raises(SsimreconError, match="model.data_consistency"):
        Reconstructor(torch.nn.Identity(), Physics("multicoil", True), mask, maps_per_batch=True)
    Reconstructor(torch.nn.Identity(), Physics("multicoil"), mask, maps_per_batch=True)
