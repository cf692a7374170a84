"""Reconstructions of a BIDS dataset written as a BIDS derivative dataset (``reconstruct --bids``).

Layout (BIDS 1.9 derivatives), under ``OUT`` (default ``<dataset>/derivatives/ssimrecon``):

* ``dataset_description.json``: ``DatasetType: derivative``, ``GeneratedBy`` (ssimrecon and its
  version, the models used) and ``SourceDatasets`` (the input dataset's folder);
* per input ``sub-<s>/[ses-<t>/]anat/<entities>_T1w.nii.gz`` and each model, the reconstruction
  ``<entities>_desc-<Label>_T1w.nii.gz``, the zero-filled input it was computed from
  ``<entities>_desc-<Label>Zerofilled_T1w.nii.gz`` (the model's mask decides it) and the sidecar
  ``<entities>_desc-<Label>_T1w.json`` (the metrics JSON of ``reconstruct``, with ``Sources``);
* ``reconstruct.csv``: one row per (volume, model), as for any ``reconstruct --output-dir``.

``<Label>`` is the network's name as a BIDS label (letters and digits only, each word capitalised:
``Net-mse-dssim`` -> ``NetMseDssim``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ssimrecon import __version__
from ssimrecon.atomic import write_text_atomic
from ssimrecon.data.bids import bids_t1w_files
from ssimrecon.data.ids import nifti_stem
from ssimrecon.errors import SsimreconError

BIDS_VERSION = "1.9.0"
#: the derivative's folder name under ``<dataset>/derivatives/``
PIPELINE = "ssimrecon"


def default_output(dataset: Path) -> Path:
    return Path(dataset) / "derivatives" / PIPELINE


def bids_label(name: str) -> str:
    """A network name as a BIDS label: its words (split at anything not a letter or digit),
    capitalised and joined (``Net-mse-dssim`` -> ``NetMseDssim``); SsimreconError if none."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
    if not words:
        raise SsimreconError(f"network name {name!r} has no letter or digit for a BIDS label")
    return "".join(w[0].upper() + w[1:] for w in words)


def dataset_inputs(dataset: Path) -> list[Path]:
    """Every T1w volume of the dataset (absolute paths, sorted); SsimreconError if none."""
    dataset = Path(dataset)
    if not (dataset / "dataset_description.json").is_file():
        raise SsimreconError(f"--bids {dataset}: no dataset_description.json (not a BIDS dataset)")
    files = [dataset / relative for relative, _, _ in bids_t1w_files(dataset)]
    if not files:
        raise SsimreconError(f"--bids {dataset}: no sub-*/[ses-*/]anat/*_T1w.nii[.gz] volume")
    return files


def derivative_paths(dataset: Path, out: Path, source: Path, network: str) -> dict[str, Path]:
    """``{"network", "zero_filled", "metrics"}`` of one input and network (module docstring)."""
    relative = Path(source).relative_to(dataset)
    entities = nifti_stem(relative.name)[: -len("_T1w")]
    folder, label = Path(out) / relative.parent, bids_label(network)
    return {
        "network": folder / f"{entities}_desc-{label}_T1w.nii.gz",
        "zero_filled": folder / f"{entities}_desc-{label}Zerofilled_T1w.nii.gz",
        "metrics": folder / f"{entities}_desc-{label}_T1w.json",
    }


def add_sources(metrics_path: Path, dataset: Path, source: Path) -> None:
    """Add BIDS ``Sources`` (the input as a ``bids:raw:`` URI) to a written sidecar."""
    content: dict[str, Any] = json.loads(metrics_path.read_text())
    content["Sources"] = [f"bids:raw:{Path(source).relative_to(dataset).as_posix()}"]
    write_text_atomic(metrics_path, json.dumps(content, indent=2, default=str) + "\n")


def write_dataset_description(out: Path, dataset: Path, models: dict[str, Path]) -> Path:
    """``OUT/dataset_description.json`` for the reconstructions of ``dataset`` by ``models``
    (network -> model file)."""
    description = {
        "Name": f"ssimrecon reconstructions of {Path(dataset).name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": PIPELINE,
                "Version": __version__,
                "Description": "undersampled with each model's mask and reconstructed by its "
                "U-Net: " + ", ".join(f"desc-{bids_label(n)} = {p}" for n, p in models.items()),
            }
        ],
        "SourceDatasets": [{"URL": Path(dataset).resolve().as_uri()}],
        "DatasetLinks": {"raw": Path(dataset).resolve().as_uri()},
    }
    path = Path(out) / "dataset_description.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(description, indent=2) + "\n")
    return path
