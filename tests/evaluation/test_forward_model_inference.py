"""Evaluation, reconstruct and export-kspace of complex and multicoil data: the bundle's forward
model and data consistency are applied (the network gets 2 channels, multicoil k-space per coil)."""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from ssimrecon.evaluation.evaluate import evaluate_shards
from ssimrecon.evaluation.reconstruct import reconstruct
from ssimrecon.kspace.export import export_kspace
from ssimrecon.kspace.shards import ShardReader, make_shard
from tests.helpers.models import make_complex_test_model
from tests.helpers.shards import preprocessing, sample_mask, write_mask_file
from tests.helpers.volumes import ixi_affine, smooth_head

SHAPE = (32, 32, 20)  # P, S, R as in IXI T1: axial slices of 20 x 32, framed in 32 x 32


@pytest.mark.parametrize(("model", "dc"), [("complex", False), ("multicoil", True)])
def test_shards_and_niftis_of_each_forward_model(tmp_path: Path, model: str, dc: bool) -> None:
    volume = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(smooth_head(SHAPE), ixi_affine((1.5, 1.5, 2.0))), str(volume))
    prep = preprocessing(readout_axis=2, image_size=(32, 32), forward_model=model, coils=4)
    mask = sample_mask()
    shard = tmp_path / "S.h5"
    make_shard(volume, "S", prep, shard)
    make_complex_test_model(tmp_path / "net.pt", mask, prep=prep, data_consistency=dc)
    mask_file = write_mask_file(tmp_path / "mask.npz", mask)
    common = {"mask_path": mask_file, "min_signal_fraction": 0.05, "device": "cpu"}
    zero = evaluate_shards([shard], method="zero-filled", model_path=None, **common)
    net = evaluate_shards([shard], method="net", model_path=tmp_path / "net.pt", **common)
    for result in (zero, net):
        assert np.isfinite(result.slices["ssim"]).any()
    assert not np.allclose(zero.slices["mse"], net.slices["mse"])
    # a NIfTI gets the bundle's acquisition simulated (seeded by its file name); a shard its own
    for source in (volume, shard):
        metrics = reconstruct(tmp_path / "net.pt", source, tmp_path / source.stem / "r.nii.gz")
        assert metrics["network"]["ssim"] is not None and metrics["zero_filled"]["psnr"]
    # export-kspace: every coil under the same mask, and the sensitivities
    export_kspace(shard, mask_file, tmp_path / "k.h5")
    with h5py.File(tmp_path / "k.h5") as f, ShardReader(shard, mask) as reader:
        kspace = f["kspace"][()]
        assert kspace.shape == reader.read_kspace().shape
        assert np.all(kspace[..., ~mask] == 0)
        assert ("sensitivities" in f) == (model == "multicoil")
