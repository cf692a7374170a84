"""Model bundles: round trip, weights_only safety, clear errors naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ssimrecon.errors import CheckpointError
from ssimrecon.kspace.shards import grid_record
from ssimrecon.nn.bundle import load_model_bundle, save_model_bundle
from ssimrecon.nn.unet import UNet


class Custom:
    """A class that torch.load(weights_only=True) must refuse to unpickle."""

    def __init__(self) -> None:
        self.value = 1


def _save(path: Path, model: UNet | None = None) -> UNet:
    torch.manual_seed(0)
    if model is None:
        model = UNet(base_channels=4, depth=2, residual=True, norm="batch")
    mask = np.random.default_rng(0).random((16, 16)) < 0.3
    save_model_bundle(
        path,
        model=model,
        preprocessing={
            "image_size": [16, 16],
            "scale_percentile": np.float64(99.5),
            "readout_axis": 0,
        },
        mask=mask,
        mask_meta={"seed": np.int64(3), "acceleration": 3.2, "center_size": (4, 4)},
        extra={"epoch": 7, "loss": {"mse": 1.0, "dssim": 0.1}, "history": torch.arange(3.0)},
        grid=grid_record(0, (np.float64(1.5), 2.0), None),
    )
    return model


def test_round_trip_identical_outputs(tmp_path: Path) -> None:
    path = tmp_path / "models" / "net.pt"
    model = _save(path)
    # make BatchNorm running stats non-trivial so buffers must round-trip too
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 1, 16, 16) * 3)
    save_model_bundle(
        path,
        model=model,
        preprocessing={},
        mask=torch.ones(16, 16, dtype=torch.bool),
        mask_meta={},
        extra={"epoch": 8},
        grid=None,
    )
    loaded, bundle = load_model_bundle(path)
    assert not loaded.training and loaded.model_config == model.model_config
    x = torch.rand(2, 1, 16, 16)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert bundle["format"] == "ssimrecon-model" and bundle["version"] == 1
    assert bundle["mask"].dtype == torch.bool and bundle["mask"].all()
    assert bundle["extra"] == {"epoch": 8} and "grid" not in bundle  # grid None: as older bundles
    assert [p.name for p in path.parent.iterdir()] == ["net.pt"]  # no temp file left behind


def test_the_training_grid_round_trips_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    _save(path)
    bundle = load_model_bundle(path)[1]
    assert bundle["grid"] == grid_record(0, (1.5, 2.0), None)
    assert type(bundle["grid"]["pixel_spacing_mm"][0]) is float  # numpy scalars made plain
    raw = torch.load(path, weights_only=True)
    raw["grid"] = [1.5, 2.0]
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: grid is not a dict"):
        load_model_bundle(tmp_path / "bad.pt")


def test_metadata_is_plain_and_weights_only_loadable(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    _save(path)
    raw = torch.load(path, weights_only=True)
    assert (
        raw["preprocessing"]["scale_percentile"] == 99.5
        and type(raw["preprocessing"]["scale_percentile"]) is float
    )
    assert raw["mask_meta"] == {"seed": 3, "acceleration": 3.2, "center_size": [4, 4]}
    assert torch.equal(raw["extra"]["history"], torch.arange(3.0))
    expected_mask = np.random.default_rng(0).random((16, 16)) < 0.3
    assert np.array_equal(raw["mask"].numpy(), expected_mask)


def test_unsafe_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"format": "ssimrecon-model", "payload": Custom()}, evil)
    with pytest.raises(
        CheckpointError, match=r"evil\.pt.*refused to load.*not a plain-tensor checkpoint"
    ):
        load_model_bundle(evil)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(CheckpointError, match=r"noise\.pt.*refused to load"):
        load_model_bundle(noise)
    truncated = tmp_path / "truncated.pt"
    _save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=r"truncated\.pt"):
        load_model_bundle(truncated)


def test_missing_and_wrong_format(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"absent\.pt.*does not exist"):
        load_model_bundle(tmp_path / "absent.pt")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match=r"other\.pt.*not an ssimrecon model bundle"):
        load_model_bundle(other)
    good = tmp_path / "good.pt"
    _save(good)
    bundle = torch.load(good, weights_only=True)
    for key, match in [("mask", "missing keys"), ("version", "version")]:
        broken = dict(bundle)
        del broken[key]
        torch.save(broken, tmp_path / "broken.pt")
        with pytest.raises(CheckpointError, match=rf"broken\.pt.*{match}"):
            load_model_bundle(tmp_path / "broken.pt")
    mismatched = dict(bundle, model_config=dict(bundle["model_config"], base_channels=8))
    torch.save(mismatched, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match=r"mismatch\.pt.*weights do not match"):
        load_model_bundle(tmp_path / "mismatch.pt")


def test_save_rejects_unstorable_metadata(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    with pytest.raises(CheckpointError, match=r"extra\.obj"):
        save_model_bundle(
            path,
            model=UNet(base_channels=4, depth=1),
            preprocessing={},
            mask=np.ones((4, 4), bool),
            mask_meta={},
            extra={"obj": Custom()},
            grid=None,
        )
    assert not path.exists() and os.listdir(tmp_path) == []


def test_nan_weights_are_refused_naming_the_tensor(tmp_path: Path) -> None:
    """Mutation tried: without the finiteness check the bundle loads and writes NaN volumes."""
    path = tmp_path / "m.pt"
    _save(path)
    bundle = torch.load(path, weights_only=True)
    name = next(k for k, v in bundle["state_dict"].items() if v.is_floating_point())
    bundle["state_dict"][name].view(-1)[0] = float("nan")
    torch.save(bundle, path)
    with pytest.raises(CheckpointError, match=rf"m\.pt: weights hold NaN .*\({name}\)"):
        load_model_bundle(path)


def test_a_huge_declared_network_is_refused_without_allocating_it(tmp_path: Path) -> None:
    """base_channels 4096 at depth 6 is about 10^12 parameters (4 TB): building it would die with an
    out-of-memory error. Mutation tried: building the model on the CPU instead of ``meta``."""
    path = tmp_path / "m.pt"
    _save(path)
    bundle = torch.load(path, weights_only=True)
    bundle["model_config"].update(base_channels=4096, depth=6)
    torch.save(bundle, path)
    with pytest.raises(CheckpointError, match=r"m\.pt: weights do not match model_config"):
        load_model_bundle(path)


def test_bundle_records_version_and_git_commit(tmp_path: Path) -> None:
    import subprocess
    from importlib.metadata import version

    path = tmp_path / "m.pt"
    _save(path)
    provenance = torch.load(path, weights_only=True)["provenance"]
    assert provenance["ssimrecon_version"] == version("ssimrecon")
    head = subprocess.run(
        ["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert provenance["git_commit"] in (head, f"{head}-dirty")
