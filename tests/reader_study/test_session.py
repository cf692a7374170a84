"""``ssimrecon reader-study make`` on real shards and model bundles: the trials, the key and the
images the page shows at each position (the networks' own reconstructions, as Figure 2 shows
them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ssimrecon.cli import main
from ssimrecon.evaluation.evaluate import load_model
from ssimrecon.evaluation.inference import predict_slices
from ssimrecon.kspace.fft import zero_filled_magnitude
from ssimrecon.kspace.mask import load_mask
from ssimrecon.kspace.shards import ShardReader
from ssimrecon.plots.figure2 import display
from ssimrecon.reader_study.images import decode_data_uri, to_uint8
from tests.helpers.models import make_test_model
from tests.helpers.shards import mask_path_of, preprocessing, write_test_shards

METHODS = ["zero-filled", "Net-mse", "Net-mse-dssim"]


def _settings(**overrides) -> str:
    values = {
        "methods": METHODS,
        "trials": 6,
        "repeats": 1,
        "seed": 3,
        "tasks": ["choice", "likert"],
        "zoom": 2,
        "min_signal_fraction": 0.05,
        **overrides,
    }
    return json.dumps(values)


@pytest.fixture
def inputs(tmp_path: Path) -> dict:
    shards = write_test_shards(tmp_path / "shards", n_subjects=3, n_slices=4, size=32)
    mask = load_mask(mask_path_of(shards))[0]
    models = {}
    for seed, name in enumerate(METHODS[1:]):
        models[name] = tmp_path / f"{name}.pt"
        make_test_model(models[name], mask, prep=preprocessing(image_size=(32, 32)), seed=seed)
    return {"shards": shards, "mask": mask, "models": models}


def _page_pixels(
    image: np.ndarray, extent: tuple[int, int, int, int], data_range: float
) -> np.ndarray:
    """The page's pixels of a slice, computed here: native extent, display orientation, window."""
    r0, r1, c0, c1 = extent
    return to_uint8(display(image[r0:r1, c0:c1]), data_range)


def _make(tmp_path: Path, inputs: dict, config: str, models: dict | None = None) -> int:
    models = inputs["models"] if models is None else models
    return main(
        ["reader-study", "make", "--shards", *map(str, inputs["shards"])]
        + ["--mask", str(mask_path_of(inputs["shards"])), "--config-json", config]
        + ["--model", *(f"{n}={p}" for n, p in models.items())]
        + ["--html", str(tmp_path / "page" / "reader-study.html")]
        + ["--key", str(tmp_path / "key.csv"), "--device", "cpu"]
    )


def test_make_shows_each_method_where_the_key_says(tmp_path: Path, inputs: dict) -> None:
    assert _make(tmp_path, inputs, _settings()) == 0
    key = pd.read_csv(tmp_path / "key.csv", keep_default_na=False)
    assert key["trial"].nunique() == 7 and len(key) == 21
    first = key[key["repeat_of"] == ""].drop_duplicates("trial")
    assert first["subject"].value_counts().to_dict() == {"SUB000": 2, "SUB001": 2, "SUB002": 2}
    assert dict(zip(key["method"], key["method_order"])) == {m: i for i, m in enumerate(METHODS)}
    html = (tmp_path / "page" / "reader-study.html").read_text()
    data = json.loads(re.search(r'id="session-data">(.*?)</script>', html, re.S).group(1))
    assert data["session"] == key["session"].iloc[0] and len(data["trials"]) == 7
    assert [t["id"] for t in data["trials"]] == list(key.drop_duplicates("trial")["trial"])

    networks = {n: load_model(p, torch.device("cpu"))[0] for n, p in inputs["models"].items()}
    shard_of = {p.stem: p for p in inputs["shards"]}
    for shown in data["trials"]:
        rows = key[key["trial"] == shown["id"]].sort_values("position")
        subject, index = rows["subject"].iloc[0], int(rows["slice"].iloc[0])
        with ShardReader(shard_of[subject], inputs["mask"]) as reader:
            position = int(np.flatnonzero(reader.slice_index == index)[0])
            kspace, target = reader.read_slice(position)
            data_range = float(reader.attrs["data_range"])
            extent = reader.native_extent
            scale = reader.input_scale()
        images = {"zero-filled": zero_filled_magnitude(kspace)}
        for name, network in networks.items():
            images[name] = predict_slices(network, kspace[None], device="cpu", input_scale=scale)[0]

        expected = [target] + [images[m] for m in rows["method"]]
        for uri, image in zip([shown["reference"], *shown["candidates"]], expected):
            np.testing.assert_array_equal(
                decode_data_uri(uri), _page_pixels(image, extent, data_range)
            )


def test_make_is_reproducible_and_refuses_a_method_without_a_model(
    tmp_path: Path, inputs: dict, capsys: pytest.CaptureFixture
) -> None:
    assert _make(tmp_path / "a", inputs, _settings()) == 0
    assert _make(tmp_path / "b", inputs, _settings()) == 0
    assert (tmp_path / "a" / "key.csv").read_text() == (tmp_path / "b" / "key.csv").read_text()
    page = (tmp_path / "a" / "page" / "reader-study.html").read_bytes()
    assert page == (tmp_path / "b" / "page" / "reader-study.html").read_bytes()
    one_model = {"Net-mse": inputs["models"]["Net-mse"]}
    assert _make(tmp_path / "c", inputs, _settings(), models=one_model) == 2
    assert "method Net-mse-dssim has no --model" in capsys.readouterr().err
    assert _make(tmp_path / "d", inputs, _settings(trials=20)) == 2
    assert "reader_study.trials" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
