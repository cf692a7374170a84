"""``preprocessing.image_size: auto``: the slice size a bring-your-own dataset needs, from QC.

Each volume of ``subjects.csv`` (its stored ``shape`` ``AxBxC`` and nibabel ``orientation`` codes,
e.g. ``PSR``) is put in RAS order as preprocessing does; its two in-plane axes (all but
``readout_axis``) divided by ``downsample`` (floor) are its slice size.  The auto size is the
largest slice over every volume, each side rounded up to the next multiple of 2**depth (the U-Net
pools ``depth`` times), so no volume is cropped and no frame is padded further than the U-Net needs.
``ssimrecon image-size`` writes it, with how it was made, to ``image_size.json`` in the run's
results; the mask and shard jobs read it from there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ssimrecon.atomic import write_text_atomic
from ssimrecon.config.jobs import AUTO
from ssimrecon.errors import ConfigError, SsimreconError

#: nibabel axis codes -> RAS axis
_RAS_AXIS = {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}


def ras_shape(shape: str, orientation: str) -> tuple[int, int, int]:
    """A stored shape ``AxBxC`` with axis codes ``orientation`` (``PSR``) in RAS axis order."""
    sizes = [int(s) for s in shape.split("x")]
    axes = [_RAS_AXIS.get(code) for code in orientation]
    if len(sizes) != 3 or sorted(a for a in axes if a is not None) != [0, 1, 2]:
        raise SsimreconError(f"cannot put shape {shape!r} with orientation {orientation!r} in RAS")
    out = [0, 0, 0]
    for size, axis in zip(sizes, axes):
        out[axis] = size  # type: ignore[index]
    return out[0], out[1], out[2]


def auto_image_size(
    subjects: pd.DataFrame, readout_axis: int, downsample: int, depth: int
) -> dict[str, Any]:
    """``{"image_size": [H, W], "largest_slice": [h, w], "multiple": 2**depth, "volumes": n}``."""
    if subjects.empty:
        raise SsimreconError("image_size auto: subjects.csv lists no volume")
    slices = []
    for shape, orientation in zip(subjects["shape"], subjects["orientation"]):
        ras = ras_shape(str(shape), str(orientation))
        slices.append([s // downsample for i, s in enumerate(ras) if i != readout_axis])
    largest = [max(s[0] for s in slices), max(s[1] for s in slices)]
    multiple = 2**depth
    size = [multiple * math.ceil(side / multiple) for side in largest]
    return {
        "image_size": size,
        "largest_slice": largest,
        "multiple": multiple,
        "volumes": len(slices),
    }


def write_image_size(
    subjects_csv: Path, preprocessing: dict[str, Any], depth: int, output: Path
) -> dict[str, Any]:
    """The auto size of ``subjects_csv`` under ``preprocessing`` -> ``output`` (JSON); returns
    it."""
    table = pd.read_csv(subjects_csv, dtype=str)
    result = auto_image_size(
        table, int(preprocessing["readout_axis"]), int(preprocessing["downsample"]), depth
    )
    result["source"] = str(subjects_csv)
    write_text_atomic(output, json.dumps(result, indent=2) + "\n")
    return result


def resolve_image_size(settings: dict[str, Any], image_size_file: Path | None) -> dict[str, Any]:
    """``settings`` (a --config-json object holding ``image_size``) with ``auto`` replaced by the
    size in ``image_size_file``; ConfigError naming the key when auto comes without the file."""
    if settings.get("image_size") != AUTO:
        return settings
    if image_size_file is None:
        raise ConfigError("preprocessing.image_size: auto needs --image-size-file image_size.json")
    size = json.loads(Path(image_size_file).read_text())["image_size"]
    return {**settings, "image_size": [int(size[0]), int(size[1])]}
