"""The forward models on real shards (``make_shard`` of a NIfTI volume): Hermitian symmetry where it
belongs, the multicoil target is the RSS of the stored coils, the noise has the configured SNR,
the complex phase is the reference's, and contradictory settings are refused."""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from ssimrecon.errors import ShardError, SsimreconError
from ssimrecon.kspace.coils import birdcage_sensitivities, measured_snr_db, rss
from ssimrecon.kspace.effective import mirror_index
from ssimrecon.kspace.fft import fft2c, ifft2c
from ssimrecon.kspace.phase_model import complex_reference
from ssimrecon.kspace.preprocess import load_canonical, phase_seed_for, scaled_target_slices
from ssimrecon.kspace.shards import (
    FORMAT_VERSION,
    MULTICOIL_FORMULA,
    ShardReader,
    make_shard,
    validate_shard,
)
from tests.helpers.shards import preprocessing

SHAPE = (20, 24, 12)  # source voxel grid (P, S, R), 12 axial slices of 20 x 24 -> 32 x 32
IMAGE = (32, 32)
FULL = np.ones(IMAGE, bool)


@pytest.fixture(scope="module")
def volume_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An asymmetric blob volume stored IXI-like (axis codes P, S, R)."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij"))
    blob = np.exp(-4 * ((grid - 0.2) ** 2).sum(0)) * 800 + np.exp(-9 * (grid**2).sum(0)) * 300
    blob += rng.normal(0, 10, SHAPE)
    affine = np.array([[0, 0, 1.2, -7], [-0.9, 0, 0, 9], [0, 0.9, 0, -11], [0, 0, 0, 1.0]])
    path = tmp_path_factory.mktemp("volume") / "IXI002-Guys-0828-T1.nii.gz"
    nib.save(nib.Nifti1Image(np.clip(blob, 0, None).astype(np.int16), affine), str(path))
    return path


def _shard(tmp_path: Path, volume_path: Path, model: str, **extra) -> Path:
    prep = preprocessing(readout_axis=2, image_size=IMAGE, forward_model=model, **extra)
    out = tmp_path / f"{model}.h5"
    make_shard(volume_path, "IXI002", prep, out)
    return out


def _asymmetry(kspace: np.ndarray) -> float:
    """||k - conj(k[mirror])|| / ||k|| over the planes (..., H, W): 0 for a real image."""
    rows, cols = mirror_index(kspace.shape[-2:])
    mirrored = np.conj(kspace[..., rows, cols])
    return float(np.linalg.norm(kspace - mirrored) / np.linalg.norm(kspace))


@pytest.mark.parametrize("model", ["magnitude", "complex", "multicoil"])
def test_hermitian_symmetry_only_for_magnitude_data(tmp_path, volume_path, model) -> None:
    """The mirror of a sampled point carries its information only in magnitude data: the fully
    sampled k-space of every slice (every coil) is Hermitian for magnitude shards, and far from
    it for complex and multicoil ones."""
    path = _shard(tmp_path, volume_path, model)
    validate_shard(path)
    with ShardReader(path, FULL) as reader:
        assert reader.forward_model == model and reader.attrs["format_version"] == FORMAT_VERSION
        kspace = reader.read_kspace()
    n = kspace.shape[0]
    assert kspace.shape == ((n, 8, *IMAGE) if model == "multicoil" else (n, *IMAGE))
    asymmetry = _asymmetry(kspace)
    if model == "magnitude":
        assert asymmetry < 1e-5
    else:
        assert asymmetry > 0.2, asymmetry


def test_complex_shards_carry_the_phase_of_the_complex_reference(tmp_path, volume_path) -> None:
    path = _shard(tmp_path, volume_path, "complex")
    with ShardReader(path, FULL) as reader:
        target, kspace = reader.read_target(), reader.read_kspace()
        phase = np.stack([reader.read_phase(i) for i in range(reader.num_slices)])
    expected = complex_reference(target, phase_seed_for("IXI002", 0))
    np.testing.assert_allclose(target * np.exp(1j * phase), expected, atol=1e-5)
    np.testing.assert_allclose(ifft2c(kspace), expected, atol=1e-5)
    # the magnitude is the magnitude shard's: the phase changes nothing else
    with ShardReader(_shard(tmp_path, volume_path, "magnitude")) as plain:
        np.testing.assert_array_equal(plain.read_target(), target)


def test_rss_of_the_fully_sampled_coils_is_the_target(tmp_path, volume_path) -> None:
    path = _shard(tmp_path, volume_path, "multicoil", coils=4)
    with ShardReader(path, FULL) as reader:
        coils = reader.read_kspace()
        target = reader.read_target()
        sensitivities = reader.sensitivities
        assert reader.attrs["kspace_formula"] == MULTICOIL_FORMULA
        assert float(reader.attrs["data_range"]) == pytest.approx(float(target.max()))
    assert coils.shape == (len(target), 4, *IMAGE) and sensitivities.shape == (4, *IMAGE)
    np.testing.assert_allclose(rss(ifft2c(coils), axis=1), target, rtol=1e-5, atol=1e-6)
    # the sensitivities are normalised birdcage maps
    np.testing.assert_allclose((np.abs(sensitivities) ** 2).sum(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(sensitivities, birdcage_sensitivities(IMAGE, 4), atol=1e-6)


@pytest.mark.parametrize("snr_db", [20.0, 35.0])
def test_the_stored_noise_has_the_configured_snr(tmp_path, volume_path, snr_db) -> None:
    """The noiseless coil k-space is simulated again here from the volume with the primitives
    (complex reference, birdcage maps, FFT); the stored k-space differs from it by noise whose
    power gives the configured SNR (mean |k|^2 over the volume and every coil / mean |noise|^2)."""
    path = _shard(tmp_path, volume_path, "multicoil", snr_db=snr_db)
    with ShardReader(path, FULL) as reader:
        stored = reader.read_kspace()
        prep = reader.preprocessing
    magnitude = scaled_target_slices(load_canonical(volume_path)[0], prep)[0]
    image = complex_reference(magnitude, phase_seed_for("IXI002", prep.phase_seed))
    clean = fft2c(birdcage_sensitivities(IMAGE, prep.coils)[None] * image[:, None])
    assert measured_snr_db(clean, stored) == pytest.approx(snr_db, abs=0.1)
    noise = stored - clean  # white: the same power at the centre and at the edge of k-space
    centre, edge = noise[..., 12:20, 12:20], noise[..., :8, :8]
    assert np.mean(np.abs(centre) ** 2) == pytest.approx(np.mean(np.abs(edge) ** 2), rel=0.15)


def test_noise_is_seeded_by_subject_and_phase_seed(tmp_path, volume_path) -> None:
    first = _shard(tmp_path / "a", volume_path, "multicoil")
    again = _shard(tmp_path / "b", volume_path, "multicoil")
    other = _shard(tmp_path / "c", volume_path, "multicoil", phase_seed=1)
    with h5py.File(first) as a, h5py.File(again) as b, h5py.File(other) as c:
        np.testing.assert_array_equal(a["coil_kspace"][()], b["coil_kspace"][()])
        assert not np.array_equal(a["coil_kspace"][()], c["coil_kspace"][()])


def test_a_multicoil_shard_without_its_coils_is_refused(tmp_path, volume_path) -> None:
    path = _shard(tmp_path, volume_path, "multicoil")
    with h5py.File(path, "a") as f:
        del f["sensitivities"]
    with pytest.raises(ShardError, match="multicoil needs dataset 'sensitivities'"):
        validate_shard(path)


def test_phase_smooth_contradicts_a_complex_forward_model() -> None:
    with pytest.raises(SsimreconError, match="preprocessing.phase.*preprocessing.forward_model"):
        preprocessing(phase="smooth", forward_model="complex")
    with pytest.raises(SsimreconError, match="preprocessing.forward_model"):
        preprocessing(forward_model="fastmri")


def test_old_records_read_as_magnitude_data() -> None:
    record = preprocessing().to_dict()
    for key in ("forward_model", "coils", "snr_db"):
        record.pop(key)
    from ssimrecon.kspace.preprocess import Preprocessing

    assert Preprocessing.from_dict(record).forward_model == "magnitude"
