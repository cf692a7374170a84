"""plain.to_plain: checkpoint-safe data from numpy, bytes, paths and tensors; torch-free import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ssimrecon.errors import CheckpointError
from ssimrecon.plain import to_plain


def test_to_plain_converts_nested_values() -> None:
    value = {
        "name": np.bytes_(b"IXI002"),
        "raw": b"caf\xc3\xa9",
        "scale": np.float64(2.5),
        "seed": np.int64(3),
        "size": (4, np.int32(5)),
        "path": Path("/data/a.nii.gz"),
        "mask": np.array([[True, False]]),
        "weights": torch.ones(2, requires_grad=True),
        1: None,
    }
    out = to_plain(value, "meta")
    assert out["name"] == "IXI002" and out["raw"] == "café"
    assert type(out["scale"]) is float and out["scale"] == 2.5
    assert type(out["seed"]) is int and out["size"] == [4, 5] and type(out["size"][1]) is int
    assert out["path"] == "/data/a.nii.gz" and out[1] is None
    assert out["mask"].dtype == torch.bool and out["mask"].tolist() == [[True, False]]
    assert not out["weights"].requires_grad


def test_to_plain_names_the_key_of_what_it_cannot_store() -> None:
    with pytest.raises(CheckpointError, match=r"^meta\.items\[1\]: cannot store a object"):
        to_plain({"items": [1, object()]}, "meta")
    with pytest.raises(CheckpointError, match=r"^meta: dict keys must be str or int"):
        to_plain({(1, 2): 3}, "meta")


def test_plain_and_shards_import_without_torch() -> None:
    code = (
        "import sys, ssimrecon.plain, ssimrecon.kspace.shards; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
