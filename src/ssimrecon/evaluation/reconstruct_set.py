"""Several volumes with one or more models: ``reconstruct --input FILE DIR ... --output-dir OUT``.

Inputs are files and folders (every ``*.nii``/``*.nii.gz`` directly inside, sorted by name). With
one model the outputs of ``<stem>.nii.gz`` are ``OUT/<stem>.nii.gz``,
``OUT/<stem>.zero_filled.nii.gz`` and ``OUT/<stem>.metrics.json``
(``ssimrecon.evaluation.reconstruct``); with several models each has its folder ``OUT/<network>/``.
Every output is checked before anything is computed: none may be an input or a model, no two
inputs may share a stem, every folder must be writable.

One CSV (:data:`CSV_COLUMNS`, default ``OUT/reconstruct.csv``) holds one row per (volume, model),
rewritten after each volume. A volume that fails (unreadable, 2D, NaN, no signal...) gets a row
with ``status`` ``error`` and its one-line message; the others still run, and at the end one
SsimreconError counts the failures (the finished outputs stay).

``--bids DATASET`` reads every T1w volume of a BIDS dataset and writes a BIDS derivative dataset
instead (:mod:`ssimrecon.evaluation.bids_derivatives`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ssimrecon.atomic import write_csv_atomic
from ssimrecon.data.ids import NIFTI_SUFFIXES
from ssimrecon.device import pick_device
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.bids_derivatives import (
    add_sources,
    bids_label,
    dataset_inputs,
    derivative_paths,
    write_dataset_description,
)
from ssimrecon.evaluation.evaluate import load_model
from ssimrecon.evaluation.reconstruct import (
    SHARD_SUFFIXES,
    check_outputs,
    file_suffix,
    network_name,
    output_paths,
    reconstruct_loaded,
)
from ssimrecon.functional.registry import REGISTRY
from ssimrecon.progress import track

log = logging.getLogger(__name__)

CSV_NAME = "reconstruct.csv"
GEOMETRY_COLUMNS = (
    "input_shape",
    "input_voxel_mm",
    "input_orientation",
    "training_pixel_mm",
    "frame",
    "acceleration",
    "intensity_offset",
    "training_grid_recorded",
)
CSV_COLUMNS = (
    "input",
    "network",
    "status",
    "error",
    "output",
    "slices_total",
    "slices_reconstructed",
    "slices_scored",
    *(f"{method}_{m}" for m in REGISTRY for method in ("zero_filled", "network")),
    *GEOMETRY_COLUMNS,
    "model",
    "notes",
)


def expand_inputs(inputs: Sequence[Path | str]) -> list[Path]:
    """Files as given, folders as their ``*.nii``/``*.nii.gz`` (sorted); SsimreconError naming a
    path that does not exist or a folder without NIfTI files."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p for p in item.iterdir() if p.is_file() and file_suffix(p, NIFTI_SUFFIXES)
            )
            if not found:
                raise SsimreconError(f"input folder {item} holds no .nii or .nii.gz file")
            out += found
        elif item.is_file():
            out.append(item)
        else:
            raise SsimreconError(f"input {item} does not exist")
    return list(dict.fromkeys(out))


def _stem(path: Path) -> str:
    suffix = file_suffix(path, (*NIFTI_SUFFIXES, *SHARD_SUFFIXES)) or path.suffix
    return path.name[: len(path.name) - len(suffix)] if suffix else path.name


def plan_outputs(
    inputs: list[Path], labels: list[str], output_dir: Path
) -> dict[tuple[str, Path], dict[str, Path]]:
    """{(network label, input): output paths}; SsimreconError when two inputs share a stem."""
    stems: dict[str, Path] = {}
    for path in inputs:
        other = stems.setdefault(_stem(path), path)
        if other != path:
            raise SsimreconError(
                f"inputs {other} and {path} would both write {_stem(path)}.nii.gz; rename one"
            )
    nested = len(labels) > 1
    return {
        (label, path): output_paths(
            (output_dir / label if nested else output_dir) / f"{_stem(path)}.nii.gz"
        )
        for label in labels
        for path in inputs
    }


def _row(label: str, model: Path, source: Path) -> dict[str, Any]:
    """An empty CSV row of one (input, network)."""
    return {c: "" for c in CSV_COLUMNS} | {
        "input": str(source),
        "network": label,
        "model": str(model),
    }


def _fill(row: dict[str, Any], result: dict[str, Any], output: Path) -> None:
    """Copy a reconstruction's metrics JSON content into its CSV row (lists as ``AxBxC``)."""
    row.update(status="ok", output=str(output), notes="; ".join(result["notes"]))
    for key in ("slices_total", "slices_reconstructed", "slices_scored"):
        row[key] = result[key]
    for method in ("zero_filled", "network"):
        for m in REGISTRY:
            row[f"{method}_{m}"] = result[method][m]
    for key in GEOMETRY_COLUMNS:
        value = result.get(key, "")
        row[key] = "x".join(map(str, value)) if isinstance(value, list) else value


def reconstruct_many(
    models: Sequence[Path | str],
    inputs: Sequence[Path | str],
    output_dir: Path | str,
    *,
    csv_path: Path | str | None = None,
    device: str = "auto",
    batch_size: int = 8,
    bids_dataset: Path | str | None = None,
) -> pd.DataFrame:
    """Reconstruct every input with every model (see the module docstring) -> the CSV's table.

    ``bids_dataset``: the inputs are that dataset's T1w volumes (``inputs`` must be empty) and the
    outputs a BIDS derivative dataset in ``output_dir``
    (:mod:`ssimrecon.evaluation.bids_derivatives`)."""
    model_paths = [Path(m) for m in models]
    if bids_dataset is not None and inputs:
        raise SsimreconError("--bids reads the dataset's T1w volumes: give no --input with it")
    sources = expand_inputs(inputs) if bids_dataset is None else dataset_inputs(Path(bids_dataset))
    output_dir = Path(output_dir)
    csv_path = Path(csv_path) if csv_path is not None else output_dir / CSV_NAME
    if not model_paths:
        raise SsimreconError("no --model given")
    dev = pick_device(device)
    loaded = [load_model(path, dev) for path in model_paths]
    labels = [network_name(bundle, path) for path, (_, bundle) in zip(model_paths, loaded)]
    if len(set(labels)) != len(labels):
        raise SsimreconError(f"models {[str(p) for p in model_paths]} share network names {labels}")
    if bids_dataset is None:
        plan = plan_outputs(sources, labels, output_dir)
    else:
        dataset = Path(bids_dataset)
        plan = {
            (label, source): derivative_paths(dataset, output_dir, source, label)
            for label in labels
            for source in sources
        }
        if len({bids_label(label) for label in labels}) != len(labels):
            raise SsimreconError(f"networks {labels} share a BIDS label; rename one")
    protected = [*sources, *model_paths]
    for paths in plan.values():
        check_outputs(paths, protected)
    check_outputs({"csv": csv_path}, protected)

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    jobs = [(i, source) for i in range(len(model_paths)) for source in sources]
    for i, source in track(jobs, "reconstruct", "volumes"):
        (model, bundle), label = loaded[i], labels[i]
        paths = plan[(label, source)]
        row = _row(label, model_paths[i], source)
        try:
            result = reconstruct_loaded(
                model, bundle, model_paths[i], source, paths, device=dev, batch_size=batch_size
            )
            _fill(row, result, paths["network"])
            if bids_dataset is not None:
                add_sources(paths["metrics"], Path(bids_dataset), source)
        except SsimreconError as exc:
            row.update(status="error", error=str(exc))
            failures.append(f"{source} ({label}): {exc}")
            log.error("%s with %s failed: %s", source, label, exc)
        rows.append(row)
        write_csv_atomic(pd.DataFrame(rows, columns=list(CSV_COLUMNS)), csv_path)
    table = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    if bids_dataset is not None:
        write_dataset_description(output_dir, Path(bids_dataset), dict(zip(labels, model_paths)))
    if failures:
        raise SsimreconError(
            f"{len(failures)} of {len(jobs)} reconstructions failed (rows with status 'error' in "
            f"{csv_path}); first: {failures[0]}"
        )
    return table


def summary_table(table: pd.DataFrame) -> str:
    """A Markdown table of the CSV: per row the input's name, network, SSIM and PSNR of
    zero-filled and network, slices scored of total, or the error."""
    lines = [
        "| input | network | SSIM zero-filled | SSIM network | PSNR zero-filled | PSNR network "
        "| slices scored |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.to_dict("records"):
        name = Path(row["input"]).name
        if row["status"] != "ok":
            lines.append(f"| {name} | {row['network']} | error: {row['error']} | | | | |")
            continue
        values = [
            f"{v:.4f}" if isinstance(v, float) else "n/a"
            for v in (row["zero_filled_ssim"], row["network_ssim"])
        ] + [
            f"{v:.2f} dB" if isinstance(v, float) else "n/a"
            for v in (row["zero_filled_psnr"], row["network_psnr"])
        ]
        lines.append(
            f"| {name} | {row['network']} | {' | '.join(values)} "
            f"| {row['slices_scored']} of {row['slices_total']} |"
        )
    return "\n".join(lines)
