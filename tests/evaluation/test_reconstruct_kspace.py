"""``ssimrecon reconstruct --kspace FILE.h5``: a multicoil bundle applied to the measured k-space of
a fastMRI-layout file writes NIfTI stacks and metrics; the zero-filled scores equal an independent
computation (fastMRI's numpy transforms, scikit-image metrics); a magnitude bundle is refused."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ssimrecon.cli.reconstruct import reconstruct as cli_reconstruct
from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.coils import estimate_sensitivities
from ssimrecon.kspace.mask import variable_density_mask
from tests.helpers.fastmri import fastmri_fft2c, fastmri_ifft2c, write_fastmri_file
from tests.helpers.models import make_complex_test_model, make_test_model
from tests.helpers.reference import skimage_ssim_psnr
from tests.helpers.shards import preprocessing

PREP = preprocessing(
    readout_axis=2, image_size=(32, 32), forward_model="multicoil", coils=4, scale_percentile=99
)
MASK = variable_density_mask((32, 32), 4.0, 8, 0)


def _independent_zero_filled(written: dict) -> tuple[np.ndarray, np.ndarray]:
    """(RSS reference, SENSE-combined zero-filled magnitude) (S, 32, 32) from the file's k-space."""
    coils = fastmri_ifft2c(written["kspace"].astype(np.complex128))[:, :, 16:48, :]
    kspace = fastmri_fft2c(coils) * MASK
    maps = estimate_sensitivities(fastmri_fft2c(coils), 8)  # calibration: the mask's 8 x 8 centre
    images = fastmri_ifft2c(kspace)
    combined = np.sum(np.conj(maps) * images, axis=1) / np.maximum(
        np.sum(np.abs(maps) ** 2, axis=1), 1e-12
    )
    return written["rss"], np.abs(combined) * (np.sum(np.abs(maps) ** 2, axis=1) > 1e-6)


def test_reconstruct_kspace_writes_niftis_and_metrics(tmp_path: Path) -> None:
    source = tmp_path / "file_brain_AXT1POST_201_6002717.h5"
    written = write_fastmri_file(source, n_slices=3, n_coils=4, shape=(64, 32), recon=(32, 32))
    make_complex_test_model(tmp_path / "net.pt", MASK, prep=PREP, network="Net-mse")
    out = tmp_path / "out" / "recon.nii.gz"
    args = ["--model", str(tmp_path / "net.pt"), "--kspace", str(source), "--output", str(out)]
    assert cli_reconstruct([*args, "--device", "cpu"]) == 0

    for path in (out, out.with_name("recon.zero_filled.nii.gz")):
        image = nib.load(str(path))
        assert image.shape == (32, 32, 3)
        np.testing.assert_allclose(np.diag(image.affine), [220 / 32, 220 / 32, 5.0, 1.0])
        assert np.isfinite(np.asarray(image.dataobj)).all()
    metrics = json.loads(out.with_name("recon.metrics.json").read_text())
    for method in ("zero_filled", "network"):
        assert all(v is None or np.isfinite(v) for v in metrics[method].values())
        assert metrics[method]["ssim"] is not None
    assert metrics["slices_total"] == 3 and metrics["file_coils"] == 4
    assert metrics["calibration_size"] >= 8

    reference, zero_filled = _independent_zero_filled(written)
    scored = np.arange(3)[: metrics["slices_scored"]]
    assert metrics["slices_scored"] == 3
    data_range = float(reference.max())
    pairs = [skimage_ssim_psnr(reference[i], zero_filled[i], data_range) for i in scored]
    assert metrics["zero_filled"]["ssim"] == pytest.approx(np.mean([p[0] for p in pairs]), abs=2e-3)
    assert metrics["zero_filled"]["psnr"] == pytest.approx(np.mean([p[1] for p in pairs]), abs=0.05)
    # the zero-filled NIfTI is on the file's (the RSS reference's) intensity axis
    saved = np.moveaxis(
        np.asarray(nib.load(str(out.with_name("recon.zero_filled.nii.gz"))).dataobj), -1, 0
    )
    np.testing.assert_allclose(saved, zero_filled, rtol=2e-3, atol=2e-3 * data_range)


def test_a_magnitude_bundle_refuses_measured_multicoil_kspace(tmp_path: Path) -> None:
    source = tmp_path / "f.h5"
    write_fastmri_file(source, n_slices=2)
    make_test_model(
        tmp_path / "mag.pt", MASK, prep=preprocessing(readout_axis=2, image_size=(32, 32))
    )
    args = ["--model", str(tmp_path / "mag.pt"), "--kspace", str(source)]
    with pytest.raises(SsimreconError, match=r"magnitude data.*--kspace .*f\.h5.*multicoil"):
        cli_reconstruct([*args, "--output", str(tmp_path / "r.nii.gz"), "--device", "cpu"])
    with pytest.raises(SystemExit):
        cli_reconstruct([*args, "--input", str(source), "--output", str(tmp_path / "r.nii.gz")])
