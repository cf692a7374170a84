"""The demo archive: real anatomy, names, geometry, the variations present, sources, determinism."""

from __future__ import annotations

import gzip
import hashlib
import re
import tarfile

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from ssimrecon.cli.data import demo_archive
from ssimrecon.data.anatomy import (
    HEAD,
    MNI_TO_HEAD,
    PYDEFACE_PIN,
    alignment_score,
    load_composite,
    package_file,
)
from ssimrecon.data.demo import (
    DEMO_FOV,
    ORIENTATIONS,
    SOURCE,
    VOXEL_FACTOR,
    build_demo_archive,
    storage_affine,
)
from ssimrecon.data.ids import parse_ixi_name
from ssimrecon.errors import SsimreconError

NAME = re.compile(r"^DEMO\d{3}-Synth[ABC]-\d{4}-T1\.nii\.gz$")
DESCRIP = re.compile(
    r"^demo: (?P<source>.+) g(?P<gamma>[\d.]+) c(?P<grey>[-+][\d.]+) b(?P<bias>[\d.]+) "
    r"n(?P<noise>[\d.]+)$"
)
SHAPE = (32, 32, 24)  # A-P, S-I, L-R
NOMINAL = (7.0, 6.5, 7.5)  # mm: field of view 224 x 208 x 180 mm
N_SUBJECTS = 6


def _volumes(tar_path):
    with tarfile.open(tar_path) as tar:
        members = tar.getmembers()
        blobs = {m.name: tar.extractfile(m).read() for m in members}
    return members, blobs


def _image(blob: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(blob))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "IXI-T1.tar"
    md5 = build_demo_archive(out, n_subjects=N_SUBJECTS, seed=5, shape=SHAPE, voxel=NOMINAL)
    return out, md5


def test_members_are_ixi_named_sorted_and_normalised(tiny):
    path, md5 = tiny
    members, _ = _volumes(path)
    names = [m.name for m in members]
    assert len(names) == N_SUBJECTS and names == sorted(names)
    assert all(NAME.match(n) for n in names), names
    assert len({n.split("-")[0] for n in names}) == N_SUBJECTS  # distinct subject ids
    # IXI's layout, parsed as IXI names are, but never an IXI subject or site
    parsed = [parse_ixi_name(n) for n in names]
    assert all(s.startswith("DEMO") and site.startswith("Synth") for s, site in parsed), parsed
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.isfile() for m in members)
    assert path.with_name("IXI-T1.tar.md5").read_text() == f"{md5}  IXI-T1.tar\n"
    assert hashlib.md5(path.read_bytes()).hexdigest() == md5


def test_volumes_keep_the_field_of_view_with_their_own_voxels_and_a_head_inside(tiny):
    _, blobs = _volumes(tiny[0])
    fov_ras = np.array([NOMINAL[2] * SHAPE[2], NOMINAL[0] * SHAPE[0], NOMINAL[1] * SHAPE[1]])
    nominal_ras = np.array([NOMINAL[2], NOMINAL[0], NOMINAL[1]])
    for name, blob in blobs.items():
        assert blob[:2] == b"\x1f\x8b" and blob[4:8] == b"\0\0\0\0"  # gzip, header mtime 0
        img = _image(blob)
        assert img.get_data_dtype() == np.int16
        assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
        canonical = nib.as_closest_canonical(img)
        zooms = np.array(canonical.header.get_zooms())
        assert np.all(zooms >= VOXEL_FACTOR[0] * nominal_ras - 1e-3), (name, zooms)
        assert np.all(zooms <= VOXEL_FACTOR[1] * nominal_ras + 1e-3), (name, zooms)
        np.testing.assert_allclose(np.array(canonical.shape) * zooms, fov_ras, atol=zooms.max())
        data = np.asarray(canonical.dataobj)
        assert 500 < data.max() < 2000
        head = data > 0.2 * data.max()
        assert 0.15 < head.mean() < 0.8, name  # a head in a field of view with background
        assert head[[0, -1]].mean() < head[data.shape[0] // 2].mean()  # smaller at L-R edges
        assert head[:, :, -1].mean() < 0.5 * head[:, :, data.shape[2] // 2].mean()  # skull top


def test_the_variations_are_present_and_the_source_is_recorded(tiny):
    _, blobs = _volumes(tiny[0])
    images = [_image(b) for b in blobs.values()]
    orientations = {nib.aff2axcodes(img.affine) for img in images}
    assert orientations <= set(ORIENTATIONS) and len(orientations) >= 2
    voxel_sizes = {tuple(np.round(img.header.get_zooms(), 3)) for img in images}
    assert len(voxel_sizes) == N_SUBJECTS
    records = [DESCRIP.match(img.header["descrip"].item().decode()) for img in images]
    assert all(records), [img.header["descrip"] for img in images]
    assert {r["source"] for r in records} == {SOURCE}
    values = {key: [float(r[key]) for r in records] for key in ("gamma", "grey", "bias", "noise")}
    for key, (low, high) in {
        "gamma": (0.75, 1.35),
        "grey": (-0.25, 0.10),
        "bias": (0.10, 0.30),
        "noise": (0.005, 0.03),
    }.items():
        assert all(low - 0.01 <= v <= high + 0.01 for v in values[key]), (key, values[key])
        assert max(values[key]) - min(values[key]) > 0.25 * (high - low), (key, values[key])
    # the noise drawn is the noise present: the background's mean (Rician: 1.25 sd) grows with it
    background = []
    for img in images:
        data = np.asarray(nib.as_closest_canonical(img).dataobj).astype(float)
        corners = [data[x, y, -3:] for x in (slice(0, 3), slice(-3, None)) for y in (0, -1)]
        background.append(np.mean(corners))
    noisy, quiet = np.argmax(values["noise"]), np.argmin(values["noise"])
    assert background[noisy] > 1.5 * background[quiet], (background, values["noise"])


def test_same_seed_is_byte_identical_other_seed_differs(tmp_path, tiny):
    again = tmp_path / "again.tar"
    assert (
        build_demo_archive(again, n_subjects=N_SUBJECTS, seed=5, shape=SHAPE, voxel=NOMINAL)
        == tiny[1]
    )
    other = tmp_path / "other.tar"
    assert build_demo_archive(other, n_subjects=2, seed=6, shape=SHAPE, voxel=NOMINAL) != tiny[1]


def test_composite_holds_the_sharp_mni_brain_inside_pydefaces_head():
    t1, grey, affine, box = load_composite()
    head = nib.load(str(package_file("pydeface", HEAD, PYDEFACE_PIN)))
    assert t1.shape == head.shape and np.allclose(affine, head.affine)
    brain = ndimage.binary_erosion(grey > 0.5, iterations=1)
    assert 0.02 < brain.mean() < 0.2  # grey matter: a folded ribbon, a small part of the grid
    # sharper: the mean gradient inside the brain far exceeds that of pydeface's own blurry brain
    inside = ndimage.binary_erosion(ndimage.binary_fill_holes(grey > 0.05), iterations=4)
    own = np.asarray(head.get_fdata(dtype=np.float32))
    sharp = np.mean(ndimage.gaussian_gradient_magnitude(t1, 1.0)[inside])
    blurry = np.mean(ndimage.gaussian_gradient_magnitude(own, 1.0)[inside])
    assert sharp > 1.5 * blurry, (sharp, blurry)
    outside = ~ndimage.binary_dilation(inside, iterations=16)
    assert np.abs(t1[outside] - own[outside]).max() < 1.0  # scalp, skull and face: the head's
    assert np.all(box[1] - box[0] > 150)  # a whole head, mm


def test_the_fixed_alignment_is_a_maximum_of_the_brains_correlation():
    best = alignment_score(MNI_TO_HEAD)
    assert best > 0.6
    for index, step in ((6, 4.0), (7, -4.0), (8, 4.0), (2, 5.0), (3, 0.1)):
        moved = np.array(MNI_TO_HEAD)
        moved[index] += step
        assert alignment_score(moved) < best - 0.01, (index, step)


def test_a_missing_package_is_one_line_naming_the_pip_pin():
    with pytest.raises(SsimreconError, match=r"pip install --no-deps nothere==1\.0"):
        package_file("ssimrecon_no_such_package", "data/x.nii.gz", "nothere==1.0")
    with pytest.raises(SsimreconError, match=r"missing\.nii\.gz .*pydeface==2\.1\.0"):
        package_file("pydeface", "data/missing.nii.gz", PYDEFACE_PIN)


def test_cli_default_voxel_spreads_the_shape_over_the_demo_field_of_view(tmp_path):
    out = tmp_path / "cli.tar"
    config = '{"subjects": 1, "seed": 0, "shape": [56, 52, 46]}'
    assert demo_archive(["--output", str(out), "--config-json", config]) == 0
    _, blobs = _volumes(out)
    img = nib.as_closest_canonical(_image(next(iter(blobs.values()))))
    fov_ras = np.array([DEMO_FOV[2], DEMO_FOV[0], DEMO_FOV[1]])
    zooms = np.array(img.header.get_zooms())
    np.testing.assert_allclose(np.array(img.shape) * zooms, fov_ras, atol=zooms.max())
    assert np.all((zooms >= 0.9 * 4 - 1e-3) & (zooms <= 1.3 * 4 + 1e-3))  # nominal 4 mm
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.tar", "cli.tar.md5"]


@pytest.mark.parametrize("axcodes", ORIENTATIONS)
def test_storage_affine_centres_the_grid_with_its_axis_codes(axcodes):
    affine = storage_affine((20, 30, 40), (0.9, 1.1, 1.3), axcodes)
    assert nib.aff2axcodes(affine) == axcodes
    np.testing.assert_allclose(nib.affines.voxel_sizes(affine), (0.9, 1.1, 1.3))
    np.testing.assert_allclose(nib.affines.apply_affine(affine, (9.5, 14.5, 19.5)), 0, atol=1e-9)
