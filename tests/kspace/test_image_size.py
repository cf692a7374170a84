"""``preprocessing.image_size: auto``: the slice size of a dataset from its QC table."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ssimrecon.cli import main
from ssimrecon.errors import ConfigError, SsimreconError
from ssimrecon.kspace.image_size import auto_image_size, ras_shape, resolve_image_size


def test_ras_shape_follows_the_axis_codes_as_nibabel_reorients() -> None:
    affine = np.diag([1.0, 1.0, 1.0, 1.0])[[1, 2, 0, 3]]  # stored axes point A, S, R
    image = nib.Nifti1Image(np.zeros((30, 20, 10), np.float32), affine)
    codes = "".join(nib.aff2axcodes(image.affine))
    assert ras_shape("30x20x10", codes) == nib.as_closest_canonical(image).shape
    assert ras_shape("194x206x201", "PSR") == (201, 194, 206)
    with pytest.raises(SsimreconError, match="RAS"):
        ras_shape("3x4x5", "PSS")


def test_the_largest_slice_is_rounded_up_to_the_unet_multiple() -> None:
    subjects = pd.DataFrame(
        {"shape": ["150x256x256", "176x240x256"], "orientation": ["RAS", "RAS"]}
    )
    got = auto_image_size(subjects, readout_axis=2, downsample=1, depth=4)
    assert got["largest_slice"] == [176, 256] and got["image_size"] == [176, 256]
    got = auto_image_size(subjects, readout_axis=2, downsample=3, depth=4)
    assert got["largest_slice"] == [58, 85] and got["image_size"] == [64, 96]  # 176//3, 256//3
    assert got["multiple"] == 16 and got["volumes"] == 2
    sagittal = auto_image_size(subjects, readout_axis=0, downsample=1, depth=4)
    assert sagittal["image_size"] == [256, 256]


def test_auto_is_resolved_from_the_file_or_refused(tmp_path: Path) -> None:
    assert resolve_image_size({"image_size": [16, 32]}, None) == {"image_size": [16, 32]}
    with pytest.raises(ConfigError, match="image_size: auto needs --image-size-file"):
        resolve_image_size({"image_size": "auto", "downsample": 1}, None)
    (tmp_path / "size.json").write_text(json.dumps({"image_size": [48, 64]}))
    resolved = resolve_image_size({"image_size": "auto", "downsample": 1}, tmp_path / "size.json")
    assert resolved == {"image_size": [48, 64], "downsample": 1}


def test_image_size_command_records_how_it_was_made(tmp_path: Path) -> None:
    csv = tmp_path / "subjects.csv"
    pd.DataFrame({"subject": ["a", "b"], "shape": ["40x50x60", "45x30x61"],
                  "orientation": ["PSR", "RAS"]}).to_csv(csv, index=False)  # fmt: skip
    out = tmp_path / "image_size.json"
    config = json.dumps({"readout_axis": 2, "downsample": 1, "depth": 2})
    assert (
        main(["image-size", "--subjects", str(csv), "--config-json", config, "--output", str(out)])
        == 0
    )
    recorded = json.loads(out.read_text())
    # PSR 40x50x60 -> RAS (60, 40, 50): slice (60, 40); RAS 45x30x61: slice (45, 30)
    assert recorded["largest_slice"] == [60, 40] and recorded["image_size"] == [60, 40]
    assert recorded["source"] == str(csv)
