"""``reconstruct --bids DATASET``: a BIDS dataset's T1w volumes reconstructed into a BIDS
derivative dataset (dataset_description.json, BIDS names, sidecars with Sources)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from ssimrecon.cli import main
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.bids_derivatives import bids_label, dataset_inputs
from ssimrecon.kspace.shards import grid_record
from tests.helpers.bids import TINY_BIDS_T1W, write_tiny_bids
from tests.helpers.models import make_test_model
from tests.helpers.shards import sample_mask

GRID = grid_record(2, (2.0, 2.0), 2.0)


def _model(folder: Path, network: str, seed: int) -> Path:
    path = folder / network / "best.pt"
    path.parent.mkdir(parents=True)
    make_test_model(path, sample_mask(), seed=seed, grid=GRID)
    bundle = torch.load(path, weights_only=True)
    bundle["extra"]["network"] = network  # as training names it
    torch.save(bundle, path)
    return path


def test_bids_labels_keep_letters_and_digits_only() -> None:
    assert bids_label("Net-mse-dssim") == "NetMseDssim"
    assert bids_label("Net-mse-dssim_dssim0.5_R4_seed1") == "NetMseDssimDssim05R4Seed1"
    with pytest.raises(SsimreconError, match="no letter or digit"):
        bids_label("--")


def test_a_bids_dataset_becomes_a_derivative_dataset(tmp_path: Path) -> None:
    dataset = write_tiny_bids(tmp_path / "ds", shape=(24, 28, 6))
    models = [_model(tmp_path / "models", n, s) for s, n in enumerate(("Net-mse", "Net-mse-dssim"))]
    argv = ["reconstruct", "--model", *map(str, models), "--bids", str(dataset), "--device", "cpu"]
    assert main(argv) == 0

    out = dataset / "derivatives" / "ssimrecon"
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"]
    assert description["GeneratedBy"][0]["Name"] == "ssimrecon"
    assert description["SourceDatasets"][0]["URL"] == dataset.resolve().as_uri()
    inputs = dataset_inputs(dataset)
    assert len(inputs) == len(TINY_BIDS_T1W)
    table = pd.read_csv(out / "reconstruct.csv")
    assert len(table) == 2 * len(inputs) and set(table["status"]) == {"ok"}
    for source in inputs:
        relative = source.relative_to(dataset)
        entities = relative.name.split("_T1w")[0]
        for label in ("NetMse", "NetMseDssim"):
            folder = out / relative.parent
            image = folder / f"{entities}_desc-{label}_T1w.nii.gz"
            zero_filled = folder / f"{entities}_desc-{label}Zerofilled_T1w.nii.gz"
            sidecar = json.loads((folder / f"{entities}_desc-{label}_T1w.json").read_text())
            assert sidecar["Sources"] == [f"bids:raw:{relative.as_posix()}"]
            assert np.isfinite(sidecar["network"]["ssim"])
            assert nib.load(str(image)).shape == nib.load(str(source)).shape
            assert np.allclose(nib.load(str(image)).affine, nib.load(str(source)).affine)
            assert zero_filled.is_file()
    # nothing was written outside the derivative folder
    written = {p for p in dataset.rglob("*") if p.is_file() and "derivatives" not in p.parts}
    assert all(p.name != "reconstruct.csv" and "desc-" not in p.name for p in written)


def test_bids_with_input_or_without_a_dataset_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path / "models", "Net-mse", 0)
    with pytest.raises(SystemExit):
        main(["reconstruct", "--model", str(model), "--bids", str(tmp_path), "--input", "x.nii"])
    assert "one of them" in capsys.readouterr().err
    assert main(["reconstruct", "--model", str(model), "--bids", str(tmp_path)]) == 2
    assert "no dataset_description.json" in capsys.readouterr().err
