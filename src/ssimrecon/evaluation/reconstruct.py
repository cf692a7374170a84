"""Apply a trained model to any T1 volume (NIfTI) or k-space shard; write NIfTIs and a metrics JSON.

NIfTI input (a fully sampled magnitude volume, e.g. a subject never seen in training): the volume is
prepared exactly as ``shards.make_shard`` prepares training data, with the model bundle's
preprocessing: RAS reorientation, slicing along the readout axis, division by the robust scale (same
percentile), negatives clipped, the bundle's undersampling mask (plus a smooth phase if the
preprocessing uses one). Shard input: its stored k-space and target are used directly.

Outputs, for ``--output DIR/NAME.nii.gz``:
- ``DIR/NAME.nii.gz``: the network reconstruction;
- ``DIR/NAME.zero_filled.nii.gz``: the zero-filled input;
- ``DIR/NAME.metrics.json``: mean SSIM/PSNR/relative error/MSE of both against the reference,
  computed in the scaled slice space (data_range = the scaled reference maximum) over the slices
  whose slice_signal is >= the model's training ``min_signal_fraction`` (0.05 if the bundle does not
  record it).
Volumes are multiplied back by the scale (input intensities) and written on the source grid (its
shape and affine); voxels of slices not taken (slice_stride) or cropped away are 0. A shard whose
source file cannot be found is written as stacked slices (H, W, S) with an identity affine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ssimrecon.atomic import atomic_output
from ssimrecon.device import pick_device
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.evaluate import load_model, shard_preprocessing
from ssimrecon.evaluation.inference import predict_slices
from ssimrecon.functional.metrics import METRICS, batch_metrics
from ssimrecon.kspace.fft import zero_filled_magnitude
from ssimrecon.kspace.preprocess import (
    Preprocessing,
    load_canonical,
    simulate_acquisition,
    slice_signal_fraction,
    slices_to_volume,
    to_source_orientation,
)
from ssimrecon.kspace.shards import ShardReader

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")
SHARD_SUFFIXES = (".h5", ".hdf5")
DEFAULT_MIN_SIGNAL = 0.05


def _suffix(path: Path, allowed: tuple[str, ...]) -> str | None:
    name = path.name.lower()
    return next((s for s in allowed if name.endswith(s)), None)


def output_paths(output: Path) -> dict[str, Path]:
    """{"network", "zero_filled", "metrics"} paths derived from ``--output NAME.nii[.gz]``."""
    output = Path(output)
    suffix = _suffix(output, NIFTI_SUFFIXES)
    if suffix is None:
        raise SsimreconError(f"output {output} must end in .nii.gz or .nii")
    stem = output.name[: -len(suffix)]
    return {
        "network": output,
        "zero_filled": output.with_name(f"{stem}.zero_filled{suffix}"),
        "metrics": output.with_name(f"{stem}.metrics.json"),
    }


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_outputs(paths: dict[str, Path], inputs: list[Path]) -> None:
    """Refuse outputs that would overwrite an input, and an output folder that cannot be written,
    before anything is computed (SsimreconError naming the file)."""
    for key, out in paths.items():
        for source in inputs:
            if _same_file(out, source):
                raise SsimreconError(
                    f"output {out} ({key.replace('_', '-')} output) would overwrite the input "
                    f"{source}; choose another --output"
                )
    folder = paths["network"].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ssimrecon-write-test-"):
            pass
    except OSError as exc:
        raise SsimreconError(
            f"output folder {folder} is not writable ({exc.strerror or exc})"
        ) from None


def _write_outputs(paths: dict[str, Path], volumes: dict[str, tuple], metrics_text: str) -> None:
    """Write the two NIfTIs and the metrics JSON all or nothing: each goes to a temporary file and
    the three are renamed only once all are written (a full disk leaves none of them)."""
    try:
        with contextlib.ExitStack() as stack:
            for key, (volume, affine, source) in volumes.items():
                path = paths[key]
                tmp = stack.enter_context(atomic_output(path, suffix=_suffix(path, NIFTI_SUFFIXES)))
                _save_nifti(volume, affine, tmp, like=source)
            tmp = stack.enter_context(atomic_output(paths["metrics"]))
            tmp.write_text(metrics_text)
    except OSError as exc:
        raise SsimreconError(
            f"writing the outputs next to {paths['network']} failed ({exc.strerror or exc}); "
            "none was written"
        ) from None


def training_min_signal(bundle: dict[str, Any]) -> float:
    """The bundle's ``extra.training.min_signal_fraction`` (or ``extra.min_signal_fraction``), else
    0.05."""
    extra = bundle.get("extra") or {}
    for holder in (extra.get("training") or {}, extra):
        value = holder.get("min_signal_fraction") if isinstance(holder, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return DEFAULT_MIN_SIGNAL


def _mask_of(bundle: dict[str, Any]) -> np.ndarray:
    return bundle["mask"].cpu().numpy().astype(bool)


def _save_nifti(data: np.ndarray, affine: np.ndarray, path: Path, like: Any = None) -> None:
    """Save float32 ``data`` at ``path`` (nibabel picks gzip from the name); units copied from
    ``like``'s header."""
    image = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    header = getattr(like, "header", None)
    if header is not None and hasattr(header, "get_xyzt_units"):
        image.header.set_xyzt_units(*header.get_xyzt_units())
    nib.save(image, path)


def _mean_metrics(values: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for m in METRICS:
        v = float(np.mean(values[m][keep]))
        out[m] = v if math.isfinite(v) else None
    return out


def _from_nifti(path: Path, bundle: dict, model_path: Path) -> dict[str, Any]:
    """Simulate the bundle's acquisition on a NIfTI volume."""
    vol_ras, src_img = load_canonical(path)
    prep = Preprocessing.from_dict(bundle["preprocessing"])
    mask = _mask_of(bundle)
    if mask.shape != prep.image_size:
        raise SsimreconError(
            f"model {model_path} mask {mask.shape} does not match the slices "
            f"{prep.image_size} of {path}"
        )
    sim = simulate_acquisition(vol_ras, prep, mask, path.name, 0)
    grid = {"ras_shape": vol_ras.shape, "source": src_img, "affine": src_img.affine}
    return {
        "kspace": sim.kspace,
        "target": sim.target,
        "slice_index": sim.slice_index,
        "scale": sim.scale,
        "data_range": sim.data_range,
        "prep": prep,
        "grid": grid,
    }


def _from_shard(path: Path, bundle: dict, model_path: Path) -> dict[str, Any]:
    """Read a shard's k-space under the model's mask and its target; find its source grid if the
    source volume exists."""
    model_mask = _mask_of(bundle)
    with ShardReader(path) as reader:
        size = reader.shape[1:]
    if model_mask.shape != size:
        raise SsimreconError(
            f"model {model_path} mask {model_mask.shape} does not match the image size "
            f"{size} of shard {path}"
        )
    with ShardReader(path, model_mask) as reader:
        prep_dict = shard_preprocessing(reader)
        if prep_dict != bundle.get("preprocessing"):
            log.warning("model %s and shard %s differ in preprocessing", model_path, path)
        data = {
            "kspace": reader.read_kspace(),
            "target": reader.read_target(),
            "slice_index": np.asarray(reader.slice_index),
            "scale": float(reader.attrs["scale"]),
            "data_range": float(reader.attrs["data_range"]),
            "prep": reader.preprocessing,
        }
        source = str(reader.attrs.get("source_file") or "")
    grid = None
    if source and Path(source).is_file():
        vol_ras, src_img = load_canonical(source)
        grid = {"ras_shape": vol_ras.shape, "source": src_img, "affine": src_img.affine}
    else:
        log.warning(
            "source volume %r of shard %s not found: writing stacked slices (H, W, S) with an "
            "identity affine",
            source,
            path,
        )
    return {**data, "grid": grid}


def _to_volume(slices: np.ndarray, data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, Any]:
    """Scaled slices -> (volume at input intensities, affine, source image or None)."""
    grid = data["grid"]
    if grid is None:
        return np.moveaxis(slices, 0, -1) * data["scale"], np.eye(4), None
    ras = slices_to_volume(slices, data["prep"], grid["ras_shape"], data["slice_index"])
    return (
        to_source_orientation(ras, grid["source"]) * data["scale"],
        grid["affine"],
        grid["source"],
    )


def reconstruct(
    model_path: Path | str,
    input_path: Path | str,
    output: Path | str,
    *,
    device: str = "auto",
    batch_size: int = 8,
) -> dict[str, Any]:
    """Reconstruct ``input_path`` with the model; write the outputs (see module docstring); return
    the metrics."""
    model_path, input_path = Path(model_path), Path(input_path)
    paths = output_paths(Path(output))
    if input_path.is_dir():
        raise SsimreconError(f"input {input_path} is a directory, not a NIfTI volume or shard")
    if not input_path.is_file():
        raise SsimreconError(f"input {input_path} does not exist")
    check_outputs(paths, [input_path, model_path])
    if _suffix(input_path, NIFTI_SUFFIXES):
        reader = _from_nifti
    elif _suffix(input_path, SHARD_SUFFIXES):
        reader = _from_shard
    else:
        raise SsimreconError(
            f"input {input_path}: unsupported file type (expected .nii, .nii.gz, .h5 or .hdf5)"
        )
    dev = pick_device(device)
    model, bundle = load_model(model_path, dev)
    data = reader(input_path, bundle, model_path)
    zero_filled = zero_filled_magnitude(data["kspace"])
    network = predict_slices(model, data["kspace"], batch_size=batch_size, device=dev)

    threshold = training_min_signal(bundle)
    signal = slice_signal_fraction(data["target"], data["data_range"])
    keep = signal >= threshold
    if not keep.any():
        log.warning(
            "no slice of %s has slice_signal >= %g: metrics over all slices", input_path, threshold
        )
        keep = np.ones_like(keep)
    result = {
        "zero_filled": _mean_metrics(
            batch_metrics(data["target"], zero_filled, data["data_range"]), keep
        ),
        "network": _mean_metrics(batch_metrics(data["target"], network, data["data_range"]), keep),
        "n_slices": int(keep.sum()),
        "n_slices_total": int(len(keep)),
        "min_signal_fraction": threshold,
        "data_range": data["data_range"],
        "scale": data["scale"],
        "model": str(model_path),
        "input": str(input_path),
    }
    volumes = {
        key: _to_volume(slices, data)
        for key, slices in (("network", network), ("zero_filled", zero_filled))
    }
    _write_outputs(paths, volumes, json.dumps(result, indent=2) + "\n")
    log.info(
        "%s: SSIM zero-filled %.4f -> network %.4f over %d slices; wrote %s",
        input_path,
        result["zero_filled"]["ssim"] or math.nan,
        result["network"]["ssim"] or math.nan,
        result["n_slices"],
        paths["network"],
    )
    return result
