"""HDF5 shards: make end to end, layout, atomic writes, reading, validation and the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from ssimrecon.checksums import file_md5
from ssimrecon.cli import main
from ssimrecon.cli.kspace import shard as shard_command
from ssimrecon.errors import ShardError, SsimreconError
from ssimrecon.kspace.fft import zero_filled_magnitude
from ssimrecon.kspace.mask import save_mask, variable_density_mask
from ssimrecon.kspace.preprocess import (
    load_canonical,
    robust_scale,
    simulate_acquisition,
    volume_to_slices,
)
from ssimrecon.kspace.shards import (
    FORMAT_VERSION,
    KSPACE_FORMULA,
    REQUIRED_ATTRS,
    ShardReader,
    grid_record,
    make_shard,
    validate_shard,
    write_shard,
)
from tests.helpers.shards import PREP, preprocessing
from tests.helpers.volumes import ixi_affine, smooth_head

SHAPE = (20, 24, 12)  # source voxel grid (PSR orientation below)
IMAGE = (16, 24)


@pytest.fixture
def volume_path(tmp_path):
    """A blob-with-noise int16 volume stored IXI-like (axis codes P, S, R)."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij"))
    blob = np.exp(-4 * (grid**2).sum(0)) * 800 + rng.normal(0, 10, SHAPE)
    affine = np.array([[0, 0, 1.2, -7], [-0.9, 0, 0, 9], [0, 0.9, 0, -11], [0, 0, 0, 1.0]])
    path = tmp_path / "IXI002-Guys-0828-T1.nii.gz"
    nib.save(nib.Nifti1Image(np.clip(blob, 0, None).astype(np.int16), affine), str(path))
    return path


def _mask_file(tmp_path, shape=IMAGE, acceleration=4.0, seed=3):
    mask = variable_density_mask(shape, acceleration, 4, seed)
    path = tmp_path / f"mask_{acceleration}.npz"
    save_mask(path, mask, acceleration=acceleration, seed=seed, center_size=4, power=2.0)
    return path, mask


def test_full_mask_shard_reconstructs_the_target(tmp_path, volume_path):
    prep = preprocessing(readout_axis=2, image_size=IMAGE)
    out = tmp_path / "shards" / "s.h5"
    make_shard(volume_path, "IXI002", prep, out)
    ras, _ = load_canonical(volume_path)
    slices, _ = volume_to_slices(ras, prep)
    scale = robust_scale(slices, 99.5)
    with ShardReader(out, np.ones(IMAGE, bool)) as r:
        target = r.read_target()
        assert r.shape == (ras.shape[2], *IMAGE) and r.num_slices == ras.shape[2]
        np.testing.assert_allclose(target, np.clip(slices / scale, 0, None), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(zero_filled_magnitude(r.read_kspace()), target, atol=1e-5)
        assert r.attrs["scale"] == pytest.approx(scale)
        assert r.attrs["data_range"] == pytest.approx(float(target.max()))
        assert r.attrs["kspace_formula"] == KSPACE_FORMULA


def test_undersampled_shard_layout_and_attrs(tmp_path, volume_path):
    _, mask = _mask_file(tmp_path, acceleration=4.0, seed=9)
    prep = preprocessing(readout_axis=2, image_size=IMAGE, slice_stride=2)
    out = tmp_path / "s.h5"
    make_shard(volume_path, "IXI002", prep, out)
    with h5py.File(out, "r") as f:
        assert f["target"].chunks == (1, *IMAGE) and f["target"].compression is None
        assert f["target"].dtype == np.float32
        assert sorted(f) == ["slice_index", "slice_signal", "target"]  # no k-space, mask, phase
    with ShardReader(out, mask) as r:
        kspace = r.read_kspace()
        assert np.all(kspace[:, ~mask] == 0)
        assert np.count_nonzero(kspace[:, mask]) > 0.9 * mask.sum() * r.num_slices
        np.testing.assert_array_equal(r.mask, mask)
        np.testing.assert_array_equal(
            r.slice_index, np.arange(0, SHAPE[1], 2)
        )  # RAS S axis = source axis 1
        assert set(REQUIRED_ATTRS) <= set(r.attrs)
        assert r.attrs["subject"] == "IXI002"
        assert r.attrs["format_version"] == FORMAT_VERSION
        assert r.attrs["readout_axis"] == 2
        assert r.attrs["source_md5"] == file_md5(volume_path)
        assert r.attrs["source_file"] == str(volume_path)
        assert r.preprocessing == prep
        # axial slices (R, A) of voxels 1.2 x 0.9 mm (nibabel's canonical zooms); 12 x 20 voxels
        # centred in 16 x 24 pixels: 2 rows and 2 columns of zero padding on each side
        zooms = nib.as_closest_canonical(nib.load(str(volume_path))).header.get_zooms()
        assert r.pixel_spacing == pytest.approx((zooms[0], zooms[1])) == (1.2, 0.9)
        assert r.native_extent == (2, 14, 2, 22)
        target = r.read_target()
        inside = np.zeros(IMAGE, bool)
        inside[2:14, 2:22] = True
        assert np.all(target[:, ~inside] == 0)
        for edge in (target[:, 2], target[:, 13], target[:, :, 2], target[:, :, 21]):
            assert np.count_nonzero(edge) > 0  # the box is tight: its border rows hold data
        target = r.read_target()
        expected_signal = (target > 0.1 * r.attrs["data_range"]).mean(axis=(1, 2))
        np.testing.assert_allclose(r.slice_signal, expected_signal, rtol=1e-6)
        for i in (0, r.num_slices // 2, -1):
            k_i, t_i = r.read_slice(i)
            np.testing.assert_array_equal(k_i, kspace[i])
            np.testing.assert_array_equal(t_i, target[i])
        with pytest.raises(IndexError):
            r.read_slice(r.num_slices)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("s.h5")) == ["s.h5"]


def test_smooth_phase_shard_differs_but_has_the_same_magnitude(tmp_path, volume_path):
    full = np.ones(IMAGE, bool)
    plain, smooth = tmp_path / "plain.h5", tmp_path / "smooth.h5"
    make_shard(volume_path, "A", preprocessing(image_size=IMAGE), plain)
    smooth_prep = preprocessing(image_size=IMAGE, phase="smooth", phase_seed=1)
    make_shard(volume_path, "A", smooth_prep, smooth)
    with ShardReader(plain, full) as a, ShardReader(smooth, full) as b:
        ka, kb = a.read_kspace(), b.read_kspace()
        assert np.abs(ka - kb).max() > 0.1 * np.abs(ka).max()
        np.testing.assert_allclose(zero_filled_magnitude(kb), b.read_target(), atol=1e-5)
        assert b.preprocessing.phase == "smooth"


def test_one_shard_serves_every_acceleration_as_format_3_stored_it(tmp_path, volume_path):
    """The k-space a reader forms under each mask is what simulate_acquisition (format 3's stored
    k-space) gives for that mask, with and without a smooth phase. Mutation tried: forgetting the
    phase on reading makes the smooth case differ."""
    ras, _ = load_canonical(volume_path)
    for phase in ("none", "smooth"):
        prep = preprocessing(image_size=IMAGE, phase=phase, phase_seed=5)
        out = tmp_path / f"{phase}.h5"
        make_shard(volume_path, "IXI002", prep, out)
        for acceleration in (2.0, 4.0):
            _, mask = _mask_file(tmp_path, acceleration=acceleration)
            expected = simulate_acquisition(ras, prep, mask, "IXI002")
            with ShardReader(out, mask) as r:
                kspace = r.read_kspace()
                np.testing.assert_allclose(kspace, expected.kspace, atol=1e-4)
                assert np.all(kspace[:, ~mask] == 0)
                k3, t3 = r.read_slice(3)
                np.testing.assert_allclose(k3, expected.kspace[3], atol=1e-4)
                np.testing.assert_array_equal(t3, expected.target[3])


def test_reading_needs_a_mask_of_the_slice_size(tmp_path, volume_path):
    out = tmp_path / "IXI002.h5"
    make_shard(volume_path, "IXI002", preprocessing(image_size=IMAGE), out)
    with ShardReader(out) as r:  # metadata and targets need no mask
        assert r.read_target().shape[1:] == IMAGE
        with pytest.raises(ShardError, match=r"IXI002\.h5 stores no k-space.*R<acceleration>"):
            r.read_slice(0)
    with pytest.raises(ShardError, match=r"\(16, 16\) does not match the 16x24 .*IXI002\.h5"):
        ShardReader(out, np.ones((16, 16), bool))


def test_export_kspace_writes_a_standalone_file_of_one_acceleration(tmp_path, volume_path):
    out = tmp_path / "IXI002.h5"
    make_shard(volume_path, "IXI002", preprocessing(image_size=IMAGE), out)
    mask_path, mask = _mask_file(tmp_path, acceleration=4.0, seed=9)
    exported = tmp_path / "export" / "IXI002_R4.h5"
    assert (
        main(
            [
                "export-kspace",
                "--shard",
                str(out),
                "--mask",
                str(mask_path),
                "--output",
                str(exported),
            ]
        )
        == 0
    )
    with ShardReader(out, mask) as r, h5py.File(exported, "r") as f:
        np.testing.assert_array_equal(f["kspace"][()], r.read_kspace())
        np.testing.assert_array_equal(f["target"][()], r.read_target())
        np.testing.assert_array_equal(f["mask"][()], mask)
        assert f.attrs["acceleration"] == pytest.approx(mask.size / mask.sum())
        assert f.attrs["mask_seed"] == 9 and f.attrs["subject"] == "IXI002"
        assert f.attrs["mask_file"] == str(mask_path)


def test_empty_volume_is_a_shard_error_naming_the_volume(tmp_path):
    empty = tmp_path / "IXI404-empty-T1.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.int16), np.eye(4)), str(empty))
    with pytest.raises(ShardError, match=r"IXI404-empty-T1\.nii\.gz.*empty"):
        make_shard(empty, "IXI404", preprocessing(image_size=IMAGE), tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def _arrays(s=3, h=8, w=6):
    rng = np.random.default_rng(1)
    return dict(
        phase=None,
        target=rng.random((s, h, w), dtype=np.float32),
        slice_index=np.arange(s, dtype=np.int32),
        slice_signal=np.full(s, 0.5, dtype=np.float32),
    )


def _attrs(**over):
    attrs = {
        "subject": "S",
        "kspace_formula": KSPACE_FORMULA,
        "scale": 1.0,
        "data_range": 1.0,
        "source_file": "v.nii.gz",
        "source_md5": "0" * 32,
        "readout_axis": 2,
        "format_version": FORMAT_VERSION,
        "preprocessing": preprocessing(image_size=(8, 6)).to_json(),
        "pixel_spacing": "[1.0, 1.5]",
        "native_extent": "[0, 8, 1, 5]",
    }
    attrs.update(over)
    return attrs


def test_validate_shard_errors_name_path_and_culprit(tmp_path):
    good = tmp_path / "good.h5"
    write_shard(good, **_arrays(), attrs=_attrs())
    validate_shard(good)
    for name in ("target", "slice_signal"):
        broken = tmp_path / f"no_{name}.h5"
        write_shard(broken, **_arrays(), attrs=_attrs())
        with h5py.File(broken, "a") as f:
            del f[name]
        with pytest.raises(ShardError, match=rf"no_{name}\.h5.*'{name}'"):
            validate_shard(broken)
        with pytest.raises(ShardError, match=name):
            ShardReader(broken)
    no_attr = tmp_path / "no_attr.h5"
    write_shard(no_attr, **_arrays(), attrs=_attrs())
    with h5py.File(no_attr, "a") as f:
        del f.attrs["scale"]
    with pytest.raises(ShardError, match=r"no_attr\.h5.*'scale'"):
        validate_shard(no_attr)
    old = tmp_path / "old.h5"
    write_shard(old, **_arrays(), attrs=_attrs())
    with h5py.File(old, "a") as f:
        f.attrs["format_version"] = 0
    with pytest.raises(ShardError, match=r"old\.h5.*format_version 0"):
        validate_shard(old)
    for name, value, problem in (
        ("native_extent", "[0, 9, 0, 6]", r"'native_extent' \[0, 9, 0, 6\] is not a box"),
        ("native_extent", "[0, 8, 3, 3]", "is not a box"),
        ("native_extent", "[0, 8, 0]", "JSON array of 4 numbers"),
        ("pixel_spacing", "[1.0, 0.0]", "two positive mm"),
        ("pixel_spacing", "1.0", "JSON array of 2 numbers"),
    ):
        bad = tmp_path / f"bad_{name}.h5"
        write_shard(bad, **_arrays(), attrs=_attrs(**{name: value}))
        with pytest.raises(ShardError, match=rf"bad_{name}\.h5.*{problem}"):
            validate_shard(bad)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(ShardError, match="junk.h5"):
        validate_shard(junk)
    with pytest.raises(ShardError, match="absent.h5"):
        validate_shard(tmp_path / "absent.h5")


def test_failed_write_leaves_neither_shard_nor_temp(tmp_path):
    out = tmp_path / "s.h5"
    with pytest.raises(TypeError):
        write_shard(out, **_arrays(), attrs=_attrs(subject=object()))  # h5py cannot store an object
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ShardError, match="source_md5"):
        write_shard(
            out, **_arrays(), attrs={k: v for k, v in _attrs().items() if k != "source_md5"}
        )
    assert list(tmp_path.iterdir()) == []


def test_cli_with_subjects_csv(tmp_path, volume_path):
    subjects = tmp_path / "subjects.csv"
    with open(subjects, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["subject", "site", "file", "md5"])
        writer.writeheader()
        writer.writerow(
            {
                "subject": "IXI002",
                "site": "Guys",
                "file": str(volume_path),
                "md5": file_md5(volume_path),
            }
        )
    out = tmp_path / "cli.h5"
    args = [
        "--subjects-csv",
        str(subjects),
        "--subject",
        "IXI002",
        "--output",
        str(out),
        "--config-json",
        preprocessing(image_size=IMAGE).to_json(),
    ]
    assert shard_command(args) == 0
    with ShardReader(out) as r:
        assert r.attrs["source_md5"] == file_md5(volume_path) and r.attrs["subject"] == "IXI002"
        assert r.preprocessing == preprocessing(image_size=IMAGE)
    bad = [
        "--subjects-csv",
        str(subjects),
        "--subject",
        "IXI999",
        "--output",
        str(tmp_path / "bad.h5"),
        "--config-json",
        preprocessing(image_size=IMAGE).to_json(),
    ]
    with pytest.raises(SsimreconError, match=r"IXI999.*subjects\.csv"):
        shard_command(bad)


def test_cli_with_volume_and_downsample(tmp_path, volume_path):
    out = tmp_path / "ds.h5"
    assert (
        shard_command(
            [
                "--volume",
                str(volume_path),
                "--subject",
                "X",
                "--output",
                str(out),
                "--config-json",
                preprocessing(image_size=(8, 12), downsample=2, phase="smooth").to_json(),
                "--source-md5",
                file_md5(volume_path),
            ]
        )
        == 0
    )
    with ShardReader(out) as r:
        assert r.shape == (SHAPE[1], 8, 12)
        # 12 x 20 voxels halved to 6 x 10 pixels of 2.4 x 1.8 mm, centred in 8 x 12
        assert r.pixel_spacing == pytest.approx((2.4, 1.8))
        assert r.native_extent == (1, 7, 1, 11)
        assert r.attrs["source_md5"] == file_md5(volume_path)
        assert r.preprocessing.downsample == 2 and r.preprocessing.phase == "smooth"


def _good_shard(tmp_path, volume_path):
    out = tmp_path / "IXI002.h5"
    make_shard(volume_path, "IXI002", preprocessing(image_size=IMAGE), out)
    return out


def test_damaged_target_data_is_detected_named_and_moved_aside(tmp_path, volume_path):
    """8 KB of corrupted target data used to be read silently (MSE 2.9e9 for that subject).
    Fletcher-32 makes the read fail; the reader names the file and moves it aside so that the next
    run rebuilds it. Mutation tried: writing without fletcher32 reads the garbage silently."""
    out = _good_shard(tmp_path, volume_path)
    with h5py.File(out, "r") as f:
        info = f["target"].id.get_chunk_info(2)
    with open(out, "r+b") as fh:
        fh.seek(info.byte_offset + 16)
        fh.write(b"\xff" * min(8192, info.size - 32))
    with ShardReader(out, _mask_file(tmp_path)[1]) as reader:  # metadata is intact: opening works
        reader.read_slice(0)
        with pytest.raises(ShardError, match=r"IXI002\.h5 is damaged .*moved it to .*\.damaged"):
            reader.read_slice(2)
    assert not out.exists() and (tmp_path / "IXI002.h5.damaged").exists()


def test_truncated_shard_is_named_and_moved_aside(tmp_path, volume_path):
    out = _good_shard(tmp_path, volume_path)
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    with pytest.raises(ShardError, match=r"IXI002\.h5 is damaged"):
        ShardReader(out)
    assert not out.exists() and (tmp_path / "IXI002.h5.damaged").exists()


def test_an_outdated_shard_is_refused_but_left_in_place(tmp_path, volume_path):
    out = _good_shard(tmp_path, volume_path)
    with h5py.File(out, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION - 1
    with pytest.raises(ShardError, match="format_version"):
        ShardReader(out)
    assert out.exists()


def test_volume_changed_since_qc_is_refused(tmp_path, volume_path):
    """subjects.csv pointing at another subject's volume: its MD5 differs from the one QC recorded.
    Mutation tried: not comparing the MD5 writes the shard onto the wrong volume."""
    out = tmp_path / "IXI012.h5"
    with pytest.raises(ShardError, match=r"has MD5 [0-9a-f]{32}, not the 0{32} that qc recorded"):
        make_shard(
            volume_path,
            "IXI012",
            preprocessing(image_size=IMAGE),
            out,
            source_md5="0" * 32,
        )
    assert not out.exists()


def test_a_full_disk_is_refused_before_writing(tmp_path, monkeypatch):
    """HDF5 can crash (rc 139) on a full disk; the shard stage checks the room first."""
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    out = tmp_path / "s.h5"
    with pytest.raises(ShardError, match=r"s\.h5 needs .* MB but .* has only 0\.0 MB free"):
        write_shard(out, **_arrays(), attrs=_attrs())
    assert list(tmp_path.iterdir()) == []


def test_reader_grid_is_the_shards_pixel_size_and_the_source_slice_thickness(
    tmp_path: Path,
) -> None:
    volume = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(smooth_head((32, 32, 20)), ixi_affine((1.5, 1.25, 2.0))), volume)
    make_shard(volume, "S1", PREP, tmp_path / "S1.h5")
    # P, S, R axes of 1.5, 1.25, 2.0 mm: RAS voxel (2.0, 1.5, 1.25); slices along S (axis 2)
    with ShardReader(tmp_path / "S1.h5") as reader:
        assert reader.slice_thickness_mm == 1.25
        assert reader.grid == grid_record(2, (2.0, 1.5), 1.25)
    volume.unlink()
    with ShardReader(tmp_path / "S1.h5") as reader:
        assert reader.slice_thickness_mm is None and reader.grid["slice_thickness_mm"] is None


def test_the_shard_command_seeds_the_phase_with_the_configured_phase_seed(
    tmp_path: Path, volume_path: Path
) -> None:
    """``ssimrecon shard --config-json`` with preprocessing.phase_seed: the shard records the seed
    and its phase is the one of (seed, subject); another seed gives another phase."""
    phases = {}
    for seed in (0, 3):
        prep = preprocessing(image_size=IMAGE, phase="smooth", phase_seed=seed)
        out = tmp_path / f"seed{seed}.h5"
        argv = ["--volume", str(volume_path), "--subject", "IXI002", "--output", str(out)]
        assert shard_command([*argv, "--config-json", prep.to_json()]) == 0
        with ShardReader(out) as reader:
            assert reader.preprocessing.phase_seed == seed
            phases[seed] = reader.read_phase(3)
    assert np.abs(phases[3] - phases[0]).max() > 0.1
