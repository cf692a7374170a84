"""Plain data: what ``torch.load(weights_only=True)`` accepts; shard attributes read back as it.

Plain values are None, bool, int, float, str, lists, dicts with str or int keys, and CPU torch
tensors.  :func:`to_plain` converts numpy scalars, bytes, numpy arrays, tuples and paths to them.
Importing this module does not import torch (the k-space stages run without it).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from ssimrecon.errors import CheckpointError


def to_plain(obj: Any, key: str) -> Any:
    """``obj`` as plain data (recursively); anything else raises CheckpointError naming ``key``.

    bytes -> str (UTF-8), numpy scalar -> Python number, numpy array -> CPU tensor, tensor ->
    detached CPU tensor, tuple -> list, ``os.PathLike`` -> str.
    """
    if isinstance(obj, bytes):  # before np.generic: np.bytes_ is both
        return obj.decode("utf-8")
    if isinstance(obj, np.generic):  # before float: np.float64 subclasses float, pickles as numpy
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise CheckpointError(
                    f"{key}: dict keys must be str or int, got {type(k).__name__}"
                )
            out[k] = to_plain(v, f"{key}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, f"{key}[{i}]") for i, v in enumerate(obj)]
    raise CheckpointError(f"{key}: cannot store a {type(obj).__name__} as plain data")
