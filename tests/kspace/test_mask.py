"""Variable-density masks: exact budget, centre, seeding, radial density, files, CLI and figure."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from ssimrecon.cli.kspace import mask as mask_command
from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.mask import (
    achieved_acceleration,
    center_region,
    design_density,
    load_mask,
    normalized_radius,
    save_mask,
    variable_density_mask,
)
from ssimrecon.plots.mask import radial_profile


@pytest.mark.parametrize(
    "shape, acceleration, center",
    [
        ((256, 256), 10, 16),
        ((80, 128), 10, 8),
        ((33, 47), 3.7, 5),
        ((16, 32), 4, 4),
        ((64, 64), 1, 0),
    ],
)
def test_exact_sample_count_and_full_centre(shape, acceleration, center):
    mask = variable_density_mask(shape, acceleration, center, seed=0)
    assert mask.shape == shape and mask.dtype == bool
    n_expected = round(shape[0] * shape[1] / acceleration)
    assert int(mask.sum()) == n_expected
    assert achieved_acceleration(mask) == pytest.approx(shape[0] * shape[1] / n_expected)
    rows, cols = center_region(shape, center)
    assert rows.stop - rows.start == min(center, *shape)
    assert mask[rows, cols].all()
    # the DC sample of the centred FFT is inside the fully sampled square
    if center:
        assert mask[shape[0] // 2, shape[1] // 2]


def test_centre_is_clipped_to_the_plane():
    rows, cols = center_region((6, 40), 10)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (6, 6)
    mask = variable_density_mask((6, 40), 2, 10, seed=1)
    assert mask[rows, cols].all() and mask.sum() == 120


def test_seeding():
    a = variable_density_mask((64, 48), 6, 6, seed=7)
    b = variable_density_mask((64, 48), 6, 6, seed=7)
    c = variable_density_mask((64, 48), 6, 6, seed=8)
    np.testing.assert_array_equal(a, b)
    assert (a != c).sum() > 50


def test_density_falls_with_radius():
    shape = (128, 128)
    r = normalized_radius(shape)
    mask = variable_density_mask(shape, 8, 8, seed=3)
    rows, cols = center_region(shape, 8)
    outside = np.ones(shape, dtype=bool)
    outside[rows, cols] = False
    rings = [(0.05, 0.25), (0.35, 0.55), (0.65, 0.85)]
    densities = [mask[(r >= lo) & (r < hi) & outside].mean() for lo, hi in rings]
    assert densities[0] > densities[1] > densities[2] > 0
    # a higher power concentrates more samples at low radius
    steep = variable_density_mask(shape, 8, 8, seed=3, power=4.0)
    assert steep[(r < 0.25) & outside].mean() > mask[(r < 0.25) & outside].mean()


def test_design_density_matches_budget_and_empirical_profile():
    """The rings' mean sampling rate over 20 masks follows the design density within 25 % of each
    ring's own density (the outer rings sample well under 5 %, so an absolute tolerance would accept
    anything there). Weighted sampling without replacement is not exactly the design: it takes ~8 %
    fewer points than designed near the centre and up to ~18 % more in the sparse outer rings.

    Mutation tried (fails this test): the sampling weights ``(1 - r) ** power`` raised to ``power +
    1`` in ``variable_density_mask`` (outer rings then 60-80 % below the design)."""
    shape, acc = (96, 96), 6
    density = design_density(shape, acc, 8, 2.0)
    assert density.sum() == pytest.approx(round(96 * 96 / acc), abs=1e-6)
    assert density.max() <= 1.0 and density.min() >= 0.0
    masks = np.mean([variable_density_mask(shape, acc, 8, seed=s) for s in range(20)], axis=0)
    _, emp = radial_profile(masks, n_bins=8)
    _, des = radial_profile(density, n_bins=8)
    assert des[-1] < 0.01  # the outermost ring: a sparse one, checked relatively too
    np.testing.assert_allclose(emp, des, rtol=0.25, atol=0)


def test_centre_too_large_is_an_error_naming_the_key():
    with pytest.raises(SsimreconError, match="mask.center_size"):
        variable_density_mask((32, 32), 10, 12, seed=0)


def test_bad_acceleration_is_an_error():
    with pytest.raises(SsimreconError, match="mask.acceleration"):
        variable_density_mask((32, 32), 0.5, 4, seed=0)


def test_save_load_round_trip(tmp_path):
    mask = variable_density_mask((40, 30), 5, 4, seed=11, power=3.0)
    path = tmp_path / "sub" / "mask.npz"
    save_mask(path, mask, acceleration=5, seed=11, center_size=4, power=3.0)
    loaded, meta = load_mask(path)
    np.testing.assert_array_equal(loaded, mask)
    assert meta["shape"] == (40, 30)
    assert meta["seed"] == 11 and meta["center_size"] == 4 and meta["power"] == 3.0
    assert meta["n_samples"] == int(mask.sum()) == 240
    assert meta["achieved_acceleration"] == pytest.approx(5.0)
    assert [p.name for p in path.parent.iterdir()] == ["mask.npz"]  # no temp file left


def test_load_mask_errors_name_the_file(tmp_path):
    with pytest.raises(SsimreconError, match="missing.npz"):
        load_mask(tmp_path / "missing.npz")
    partial = tmp_path / "partial.npz"
    np.savez(partial, mask=np.ones((4, 4), dtype=bool), seed=1)
    with pytest.raises(SsimreconError, match=r"partial\.npz.*acceleration"):
        load_mask(partial)
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(SsimreconError, match="junk.npz"):
        load_mask(junk)


def test_radial_profile_of_known_image():
    shape = (64, 64)
    r = normalized_radius(shape)
    centres, means = radial_profile(r, n_bins=4)
    np.testing.assert_allclose(centres, [0.125, 0.375, 0.625, 0.875])
    assert np.all(np.diff(means) > 0)
    assert np.all((means > centres - 0.125) & (means < centres + 0.125))


def test_cli_writes_mask_and_figure(tmp_path):
    out, fig = tmp_path / "mask.npz", tmp_path / "figs" / "mask.png"
    rc = mask_command(
        [
            "--config-json",
            '{"image_size": [48, 64], "acceleration": 4, "center_size": 6, "seed": 5, '
            '"power": 2.0}',
            "--output",
            str(out),
            "--figure",
            str(fig),
        ]
    )
    assert rc == 0
    mask, meta = load_mask(out)
    np.testing.assert_array_equal(mask, variable_density_mask((48, 64), 4, 6, seed=5))
    assert meta["acceleration"] == 4.0 and meta["power"] == 2.0
    image = imread(fig)
    assert image.ndim == 3 and image.shape[1] > 2 * image.shape[0]  # three panels side by side
    assert image[..., :3].std() > 0.05  # not a blank canvas
