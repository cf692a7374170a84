"""The IXI-shaped demo archive: names, readable volumes, geometry, determinism."""

from __future__ import annotations

import gzip
import hashlib
import re
import tarfile

import nibabel as nib
import numpy as np
import pytest

from ssimrecon.cli.data import demo_archive
from ssimrecon.data.demo import build_demo_archive, ixi_affine

NAME = re.compile(r"^IXI\d{3}-(Guys|HH|IOP)-\d{4}-T1\.nii\.gz$")
SHAPE = (32, 32, 20)


def _volumes(tar_path):
    with tarfile.open(tar_path) as tar:
        members = tar.getmembers()
        return members, {m.name: tar.extractfile(m).read() for m in members}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "IXI-T1.tar"
    md5 = build_demo_archive(out, n_subjects=3, seed=5, shape=SHAPE, voxel=(7.5, 7.5, 9.0))
    return out, md5


def test_members_are_ixi_named_sorted_and_normalised(tiny):
    path, md5 = tiny
    members, _ = _volumes(path)
    names = [m.name for m in members]
    assert len(names) == 3 and names == sorted(names)
    assert all(NAME.match(n) for n in names), names
    assert len({n.split("-")[0] for n in names}) == 3  # distinct subject ids
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.isfile() for m in members)
    assert path.with_name("IXI-T1.tar.md5").read_text() == f"{md5}  IXI-T1.tar\n"
    assert hashlib.md5(path.read_bytes()).hexdigest() == md5


def test_volumes_have_ixi_geometry_and_intensities(tiny):
    _, blobs = _volumes(tiny[0])
    for name, blob in blobs.items():
        assert blob[:2] == b"\x1f\x8b" and blob[4:8] == b"\0\0\0\0"  # gzip, header mtime 0
        img = nib.Nifti1Image.from_bytes(gzip.decompress(blob))
        assert img.shape == SHAPE
        assert img.get_data_dtype() == np.int16
        np.testing.assert_allclose(img.header.get_zooms(), (7.5, 7.5, 9.0))
        assert nib.aff2axcodes(img.affine) == ("P", "S", "R")
        assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
        data = np.asarray(img.dataobj)
        assert 500 < data.max() < 2000
        head = data > 0.2 * data.max()
        assert 0.15 < head.mean() < 0.8, name  # a head in a field of view with background
        assert (
            not head[0].any() or head[0].mean() < head[SHAPE[0] // 2].mean()
        )  # smaller at the edge


def test_same_seed_is_byte_identical_other_seed_differs(tmp_path, tiny):
    again = tmp_path / "again.tar"
    assert (
        build_demo_archive(again, n_subjects=3, seed=5, shape=SHAPE, voxel=(7.5, 7.5, 9.0))
        == tiny[1]
    )
    other = tmp_path / "other.tar"
    assert (
        build_demo_archive(other, n_subjects=3, seed=6, shape=SHAPE, voxel=(7.5, 7.5, 9.0))
        != tiny[1]
    )
    _, a = _volumes(tiny[0])
    _, b = _volumes(other)
    va = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(next(iter(a.values())))).dataobj)
    vb = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(next(iter(b.values())))).dataobj)
    assert (
        np.abs(va.astype(float) - vb).mean() > 5
    )  # different anatomy/noise, not just a renamed file


def test_subjects_differ_within_an_archive(tiny):
    _, blobs = _volumes(tiny[0])
    vols = [
        np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(b)).dataobj).astype(float)
        for b in blobs.values()
    ]
    assert np.abs(vols[0] - vols[1]).mean() > 5
    corr = np.corrcoef(vols[0].ravel(), vols[1].ravel())[0, 1]
    assert corr > 0.6  # same template head, so strongly alike


def test_cli_default_voxel_keeps_the_ixi_field_of_view(tmp_path):
    out = tmp_path / "cli.tar"
    assert (
        demo_archive(
            [
                "--output",
                str(out),
                "--config-json",
                '{"subjects": 1, "seed": 0, "shape": [64, 64, 30]}',
            ]
        )
        == 0
    )
    _, blobs = _volumes(out)
    img = nib.Nifti1Image.from_bytes(gzip.decompress(next(iter(blobs.values()))))
    assert img.shape == (64, 64, 30)
    np.testing.assert_allclose(img.header.get_zooms(), (3.75, 3.75, 6.0))
    assert (tmp_path / "cli.tar.md5").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.tar", "cli.tar.md5"]


def test_ixi_affine_centres_the_grid():
    affine = ixi_affine((256, 256, 150), (0.9375, 0.9375, 1.2))
    assert nib.aff2axcodes(affine) == ("P", "S", "R")
    np.testing.assert_allclose(nib.affines.voxel_sizes(affine), (0.9375, 0.9375, 1.2))
    np.testing.assert_allclose(nib.affines.apply_affine(affine, (127.5, 127.5, 74.5)), 0, atol=1e-9)
