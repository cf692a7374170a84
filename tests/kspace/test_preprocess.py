"""Volume <-> slices, orientation, scaling, smooth phase and k-space simulation."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from ssimrecon.config.sections import load_settings
from ssimrecon.errors import ConfigError, SsimreconError, VolumeError
from ssimrecon.kspace.fft import zero_filled_magnitude
from ssimrecon.kspace.preprocess import (
    UNRECORDED_PHASE_SEED,
    Preprocessing,
    load_canonical,
    robust_scale,
    scaled_target_slices,
    simulate_kspace,
    slice_signal_fraction,
    slices_to_volume,
    smooth_phase,
    to_source_orientation,
    volume_to_slices,
)
from tests.helpers.shards import preprocessing


def _volume(shape=(10, 12, 7), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32) + 0.1


def test_preprocessing_json_round_trip_and_validation():
    prep = preprocessing(
        readout_axis=1, image_size=[80, 128], downsample=2, slice_stride=3, phase="smooth"
    )
    assert prep.image_size == (80, 128)
    assert Preprocessing.from_json(prep.to_json()) == prep
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    assert prep.to_dict()["image_size"] == [80, 128]
    with pytest.raises(SsimreconError, match="preprocessing.phase"):
        preprocessing(phase="random")
    with pytest.raises(SsimreconError, match="preprocessing.readout_axis"):
        preprocessing(readout_axis=3)
    with pytest.raises(SsimreconError, match="colour"):
        Preprocessing.from_dict({"colour": 1})
    with pytest.raises(SsimreconError, match=r"preprocessing\.readout_axis: missing setting"):
        Preprocessing.from_dict({k: v for k, v in prep.to_dict().items() if k != "readout_axis"})


def test_a_record_without_phase_seed_was_made_with_seed_0_but_a_config_must_name_it():
    """Shards and bundles written before phase_seed was recorded read as seed 0; the
    ``--config-json`` a stage receives has no second default."""
    prep = preprocessing(phase="smooth", phase_seed=4)
    old = {k: v for k, v in prep.to_dict().items() if k != "phase_seed"}
    assert Preprocessing.from_dict(old).phase_seed == UNRECORDED_PHASE_SEED == 0
    assert Preprocessing.from_json(prep.to_json()).phase_seed == 4
    with pytest.raises(ConfigError, match=r"preprocessing\.phase_seed: missing setting"):
        load_settings(json.dumps(old), Preprocessing, "preprocessing")


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_round_trip_with_padding(axis):
    vol = _volume()
    prep = preprocessing(readout_axis=axis, image_size=(14, 13))
    slices, index = volume_to_slices(vol, prep)
    assert slices.shape == (vol.shape[axis], 14, 13) and slices.dtype == np.float32
    np.testing.assert_array_equal(index, np.arange(vol.shape[axis]))
    # slice i is the volume's i-th plane along the readout axis, centred in the padded image
    plane = np.take(vol, 3, axis=axis)
    (h, w) = plane.shape
    oy, ox = (14 - h) // 2, (13 - w) // 2
    np.testing.assert_array_equal(slices[3, oy : oy + h, ox : ox + w], plane)
    assert slices[3].sum() == pytest.approx(plane.sum())
    np.testing.assert_array_equal(slices_to_volume(slices, prep, vol.shape, index), vol)


def test_crop_and_stride_round_trip_zeroes_what_was_dropped():
    vol = _volume((9, 12, 10))
    prep = preprocessing(readout_axis=2, image_size=(6, 12), slice_stride=3)
    slices, index = volume_to_slices(vol, prep)
    np.testing.assert_array_equal(index, [0, 3, 6, 9])
    back = slices_to_volume(slices, prep, vol.shape, index)
    expected = np.zeros_like(vol)
    expected[1:7, :, ::3] = vol[1:7, :, ::3]  # crop 9 -> 6 starts at (9 - 6) // 2 = 1
    np.testing.assert_array_equal(back, expected)


def test_downsample_is_block_mean_and_inverse_is_nearest():
    vol = _volume((8, 9, 4))
    prep = preprocessing(readout_axis=2, image_size=(4, 4), downsample=2)
    slices, index = volume_to_slices(vol, prep)
    assert slices.shape == (4, 4, 4)
    np.testing.assert_allclose(slices[1, 0, 0], vol[0:2, 0:2, 1].mean(), rtol=1e-6)
    np.testing.assert_allclose(slices[2, 3, 3], vol[6:8, 6:8, 2].mean(), rtol=1e-6)
    back = slices_to_volume(slices, prep, vol.shape, index)
    assert back.shape == vol.shape
    np.testing.assert_allclose(back[6, 7, 2], slices[2, 3, 3])
    assert np.all(back[:, 8, :] == 0)  # the odd last row was not covered by a whole block


def test_slices_do_not_alias_the_volume():
    vol = _volume((5, 6, 7))
    slices, _ = volume_to_slices(vol, preprocessing(readout_axis=0, image_size=(6, 7)))
    slices[:] = 0
    assert vol.min() > 0


def _save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def test_canonical_orientation_and_inverse(tmp_path):
    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    # IXI-like PSR: axis0 -> posterior, axis1 -> superior, axis2 -> right, with anisotropic voxels
    affine = np.array([[0, 0, 1.2, -10], [-0.9, 0, 0, 20], [0, 0.9, 0, -5], [0, 0, 0, 1.0]])
    path = _save(tmp_path / "psr.nii.gz", data, affine)
    ras, original = load_canonical(path)
    assert nib.aff2axcodes(original.affine) == ("P", "S", "R")
    assert ras.dtype == np.float32 and ras.shape == (4, 6, 5)
    # RAS voxel (i, j, k): i along R = source axis 2, j along A = reversed source axis 0, k
    # along S = axis 1
    np.testing.assert_array_equal(ras, np.transpose(data, (2, 0, 1))[:, ::-1, :])
    canonical = nib.as_closest_canonical(original)
    world_src = nib.affines.apply_affine(affine, [1, 2, 3])
    world_ras = nib.affines.apply_affine(canonical.affine, [3, 6 - 1 - 1, 2])
    np.testing.assert_allclose(world_src, world_ras)
    assert ras[3, 4, 2] == data[1, 2, 3]
    back = to_source_orientation(ras, original)
    np.testing.assert_array_equal(back, data)


def test_load_canonical_errors(tmp_path):
    with pytest.raises(VolumeError, match="nothere.nii.gz"):
        load_canonical(tmp_path / "nothere.nii.gz")
    four_d = _save(tmp_path / "fourd.nii.gz", np.zeros((4, 4, 4, 2), np.float32), np.eye(4))
    with pytest.raises(VolumeError, match="fourd.nii.gz.*3D"):
        load_canonical(four_d)
    good = _save(tmp_path / "good.nii.gz", _volume((16, 16, 16)), np.eye(4))
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(VolumeError, match="truncated.nii.gz"):
        load_canonical(truncated)
    single = _save(tmp_path / "single.nii.gz", np.ones((3, 4, 5, 1), np.float32), np.eye(4))
    assert load_canonical(single)[0].shape == (3, 4, 5)


@pytest.mark.parametrize("percentile", [99.5, 99.9, 95.0, 50.0, 100.0])
def test_robust_scale_is_the_percentile_of_positive_voxels(percentile):
    rng = np.random.default_rng(4)
    vol = rng.gamma(2.0, 100.0, size=(60, 70, 50)).astype(np.float32)
    vol[rng.random(vol.shape) < 0.4] = 0.0
    vol[:5] = np.round(vol[:5])  # ties
    expected = np.percentile(vol[vol > 0].astype(np.float64), percentile)
    assert robust_scale(vol, percentile) == pytest.approx(expected, rel=1e-6)


def test_robust_scale_empty_volume_is_an_error():
    with pytest.raises(VolumeError, match="empty"):
        robust_scale(np.zeros((4, 4, 4)), 99.5)


def test_scaled_target_slices_divides_by_robust_scale_and_clips_negatives():
    vol = _volume((10, 12, 7)) - 0.3  # some negatives
    prep = preprocessing(readout_axis=1, image_size=(8, 8), slice_stride=2, scale_percentile=90.0)
    before = vol.copy()
    target, index, scale, data_range = scaled_target_slices(vol, prep)
    slices, expected_index = volume_to_slices(before, prep)
    expected_scale = robust_scale(slices, 90.0)
    np.testing.assert_array_equal(vol, before)  # the caller's volume is not modified
    np.testing.assert_array_equal(index, expected_index)
    assert isinstance(scale, float) and scale == pytest.approx(expected_scale)
    np.testing.assert_allclose(
        target, np.maximum(slices / np.float32(expected_scale), 0), rtol=1e-6
    )
    assert target.dtype == np.float32 and target.min() == 0 and data_range == float(target.max())
    with pytest.raises(VolumeError, match="empty"):
        scaled_target_slices(np.zeros((4, 4, 4), np.float32), preprocessing(image_size=(4, 4)))


def _conjugate_symmetry_error(kspace: np.ndarray) -> float:
    """max |k(-f) - conj(k(f))| / max |k| for centred k-space of even size."""
    flipped = np.roll(kspace[:, ::-1, ::-1], shift=(1, 1), axis=(1, 2))  # index i -> (-i) mod N
    return float(np.abs(flipped - np.conj(kspace)).max() / np.abs(kspace).max())


def test_smooth_phase_breaks_conjugate_symmetry_and_keeps_magnitude():
    target = _volume((3, 32, 24), seed=5)
    full = np.ones((32, 24), dtype=bool)
    real = simulate_kspace(target, full, None)
    assert real.dtype == np.complex64
    assert _conjugate_symmetry_error(real) < 1e-5
    phase = smooth_phase(target.shape, seed=1)
    complex_k = simulate_kspace(target, full, phase)
    assert _conjugate_symmetry_error(complex_k) > 0.05
    np.testing.assert_allclose(zero_filled_magnitude(complex_k), target, atol=1e-5)


def test_smooth_phase_is_smooth_seeded_and_pi_peaked():
    phase = smooth_phase((8, 64, 48), seed=(0, 123))
    assert phase.dtype == np.float32
    assert np.abs(phase).max() == pytest.approx(np.pi, rel=1e-5)
    # low frequency: neighbouring pixels and slices differ by a small fraction of the range
    assert np.abs(np.diff(phase, axis=1)).max() < 0.6
    assert np.abs(np.diff(phase, axis=0)).max() < 2.0
    np.testing.assert_array_equal(phase, smooth_phase((8, 64, 48), seed=(0, 123)))
    assert np.abs(phase - smooth_phase((8, 64, 48), seed=(0, 124))).max() > 0.5


def test_undersampled_kspace_is_zero_outside_mask():
    target = _volume((2, 16, 16), seed=6)
    mask = np.zeros((16, 16), dtype=bool)
    mask[::3, ::2] = True
    k = simulate_kspace(target, mask, smooth_phase(target.shape, 0))
    assert np.all(k[:, ~mask] == 0)
    assert np.all(np.abs(k[:, mask]) > 0)
    with pytest.raises(ValueError, match="mask shape"):
        simulate_kspace(target, mask[:8], None)


def test_slice_signal_fraction():
    target = np.zeros((2, 10, 10), dtype=np.float32)
    target[0, :5] = 1.0
    target[1, 0, 0] = 0.05
    np.testing.assert_allclose(slice_signal_fraction(target, 1.0), [0.5, 0.0])
    assert slice_signal_fraction(target, 0.4)[1] == pytest.approx(0.01)


# ---------------------------------------- geometry of the shipped configs on an IXI-shaped volume
IXI_SHAPE = (256, 256, 150)  # P, S, R voxels of an IXI T1 volume (0.9375 x 0.9375 x 1.2 mm)


def _shipped_preprocessing(*overlays: str) -> tuple[Preprocessing, dict]:
    """Preprocessing of config.yaml (+ overlays) completed with the schema's defaults."""
    import yaml

    from ssimrecon.config.check import check_config
    from tests.helpers.workspace import REPO, deep_merge

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in overlays:
        config = deep_merge(config, yaml.safe_load((REPO / name).read_text()))
    config = check_config(config, REPO / "workflow/schemas/config.schema.yaml")
    return Preprocessing.from_dict(config["preprocessing"]), config


def _ixi_shaped_nifti(path) -> np.ndarray:
    """An IXI-shaped PSR volume (a bright ellipsoid head in Rician background noise, as a real
    magnitude scan has: no voxel is exactly zero) written to ``path``; returns the voxel array."""
    from tests.helpers.volumes import IXI_ZOOMS, ixi_affine

    rng = np.random.default_rng(0)
    grids = np.meshgrid(
        *[np.linspace(-1, 1, n, dtype=np.float32) for n in IXI_SHAPE], indexing="ij"
    )
    head = (grids[0] / 0.8) ** 2 + (grids[1] / 0.75) ** 2 + (grids[2] / 0.7) ** 2 < 1
    noise = np.abs(rng.normal(0, 20, IXI_SHAPE) + 1j * rng.normal(0, 20, IXI_SHAPE))
    volume = (600.0 * head + noise).astype(np.float32)
    image = nib.Nifti1Image(volume, ixi_affine())
    image.header.set_zooms(IXI_ZOOMS)
    nib.save(image, str(path))
    return volume


def _zero_line_fraction(slices: np.ndarray) -> np.ndarray:
    """(S,) fraction of each slice's pixels that lie in an all-zero row or column."""
    s, h, w = slices.shape
    rows = np.all(slices == 0, axis=2).sum(axis=1)
    cols = np.all(slices == 0, axis=1).sum(axis=1)
    return 1 - (h - rows) * (w - cols) / (h * w)


def test_default_geometry_pads_at_most_one_unet_multiple(tmp_path):
    """The paper config's axial (L-R, A-P) slices of an IXI volume: 150 partitions padded to 160, at
    most 7 % of the frame in all-zero rows/columns (the 256x256 frame of before: 41 %)."""
    prep, config = _shipped_preprocessing()
    _ixi_shaped_nifti(tmp_path / "ixi.nii")
    volume, _ = load_canonical(tmp_path / "ixi.nii")
    assert volume.shape == (150, 256, 256)  # RAS: L-R partitions, A-P, S-I
    target, index, _, _ = scaled_target_slices(volume, prep)
    assert target.shape == (256, 160, 256)  # one slice per S-I readout sample
    fraction = _zero_line_fraction(target)
    print(
        f"\ndefault geometry: {target.shape[1]}x{target.shape[2]} slices, at most "
        f"{100 * fraction.max():.2f}% of the frame in all-zero rows/columns"
    )
    assert fraction.max() <= 0.07
    factor = 2 ** config["model"]["depth"]
    assert all(s - n < factor for s, n in zip(prep.image_size, (150, 256)))
    # the mask covers the same (ky, kz) = (L-R, A-P) plane at that size
    from ssimrecon.kspace.mask import variable_density_mask

    mask_settings = {k: config["mask"][k] for k in ("acceleration", "center_size", "seed", "power")}
    mask = variable_density_mask(prep.image_size, **mask_settings)
    assert mask.shape == target.shape[1:]
    # the criterion fails for the old zero-padded 256x256 frame (106 of 256 rows empty)
    old, _ = volume_to_slices(volume, preprocessing(readout_axis=2, image_size=(256, 256)))
    assert _zero_line_fraction(old).min() == pytest.approx(106 / 256)


def test_paper2d_overlay_is_native_sagittal_slices(tmp_path):
    """config.paper2d.yaml: 150 sagittal 256x256 (A-P, S-I) slices, no padding; its 2D mask
    therefore undersamples the S-I readout as well."""
    prep, _ = _shipped_preprocessing("config.paper2d.yaml")
    raw = _ixi_shaped_nifti(tmp_path / "ixi.nii")
    volume, _ = load_canonical(tmp_path / "ixi.nii")
    slices, index = volume_to_slices(volume, prep)
    assert slices.shape == (150, 256, 256)
    assert _zero_line_fraction(slices).max() == 0
    # slice i is the i-th L-R partition: the source's 3rd (R) axis, in-plane (A, S)
    np.testing.assert_array_equal(slices[40], np.flip(raw[:, :, 40], axis=0))
