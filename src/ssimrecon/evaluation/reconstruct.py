"""Apply a trained model to any T1 volume (NIfTI) or k-space shard; write NIfTIs and a metrics JSON.

NIfTI input (a fully sampled magnitude volume of any intensity dtype): reoriented to RAS, resampled
in-plane to the model's training grid in mm and framed (``ssimrecon.evaluation.resample``); a
volume with negative values first has its background level subtracted (its 1st percentile, when
that is negative); then divided by the robust scale (the preprocessing's percentile of the voxels
> 0), negatives clipped, and undersampled with the model's mask under the model's forward model
(:func:`ssimrecon.kspace.forward.simulate`, seeded by the file name: a smooth or complex phase,
coils and noise as the bundle's preprocessing says); that scale only fixes the units of the
simulated acquisition and of the metrics: the network sees the zero-filled image divided by its
own input scale (:func:`~ssimrecon.kspace.preprocess.input_scale` of the zero-filled volume), as
in training, so no statistic of the fully sampled volume reaches it. Every slice along the
readout axis is reconstructed (no training ``slice_stride``), except slices that are exactly
zero (their output is the background). Shard input: its stored k-space and target.

Outputs, for ``--output DIR/NAME.nii.gz``:
- ``DIR/NAME.nii.gz``: the network reconstruction; ``DIR/NAME.zero_filled.nii.gz``: the
  zero-filled input; both at input intensities (times the scale, plus the background level) on the
  input's own grid (shape and affine), so they overlay the input voxel for voxel;
- ``DIR/NAME.metrics.json``: the metrics of both against the reference (:func:`score`), and the
  geometry used.
A shard whose source file cannot be found is written as stacked slices (H, W, S) with an identity
affine; a shard of measured k-space (``source_format`` fastmri) as stacked slices with the affine
of its pixel spacing and slice thickness. ``kind="fastmri"`` (``reconstruct --kspace``) reads a
fastMRI multi-coil file (:mod:`ssimrecon.evaluation.reconstruct_kspace`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from ssimrecon.atomic import atomic_output
from ssimrecon.data.ids import NIFTI_SUFFIXES
from ssimrecon.device import pick_device
from ssimrecon.errors import SsimreconError, VolumeError
from ssimrecon.evaluation.evaluate import load_model, shard_preprocessing
from ssimrecon.evaluation.inference import predict_slices
from ssimrecon.evaluation.resample import (
    background_offset,
    cut_frame,
    frame_window,
    from_training_grid,
    in_plane,
    paste_frame,
    scaled_mask,
    to_training_grid,
    training_grid,
)
from ssimrecon.functional.registry import metric_values
from ssimrecon.kspace.forward import simulate, undersample, zero_filled_image
from ssimrecon.kspace.preprocess import (
    Preprocessing,
    input_scale,
    load_canonical,
    recorded,
    robust_scale,
    slice_signal_fraction,
    slices_to_volume,
    to_source_orientation,
)
from ssimrecon.kspace.shards import ShardReader, ras_voxel_size
from ssimrecon.nn.reconstructor import Physics

log = logging.getLogger(__name__)

SHARD_SUFFIXES = (".h5", ".hdf5")
DEFAULT_MIN_SIGNAL = 0.05


def file_suffix(path: Path, allowed: tuple[str, ...]) -> str | None:
    """The first of ``allowed`` that ``path``'s name ends with (case-insensitive), else None."""
    name = path.name.lower()
    return next((s for s in allowed if name.endswith(s)), None)


def output_paths(output: Path) -> dict[str, Path]:
    """{"network", "zero_filled", "metrics"} paths derived from ``--output NAME.nii[.gz]``."""
    output = Path(output)
    suffix = file_suffix(output, NIFTI_SUFFIXES)
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
    for folder in dict.fromkeys(path.parent for path in paths.values()):
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
                tmp = stack.enter_context(
                    atomic_output(path, suffix=file_suffix(path, NIFTI_SUFFIXES))
                )
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


def score(
    target: np.ndarray, estimate: np.ndarray, data_range: float, scored: np.ndarray
) -> tuple[dict[str, float | None], list[str]]:
    """Metrics of ``estimate`` against ``target`` (S, H, W) over the ``scored`` slices (S,) bool ->
    ({name: value} for every metric of :data:`ssimrecon.functional.registry.REGISTRY`, notes).

    SSIM, PSNR, MSE, HaarPSI, VIF, GMSD, MS-SSIM and HFEN: means of the per-slice values (paper
    convention, frame region; slices where a metric is NaN left out of its mean); relative
    error: ||target - estimate|| / ||target|| over all scored slices together (a volume-level
    ratio, so a near-empty slice cannot make it explode). A value that is not finite is None and
    ``notes`` says why.
    """
    per_slice = metric_values(target[scored], estimate[scored], data_range)
    out: dict[str, float | None] = {
        m: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for m, v in per_slice.items()
    }
    ref = target[scored].astype(np.float64)
    diff = ref - estimate[scored].astype(np.float64)
    out["rel_error"] = float(np.sqrt(np.sum(diff * diff) / np.sum(ref * ref)))
    notes = []
    for m, value in out.items():
        if value is None or not math.isfinite(value):
            out[m] = None
            reason = (
                "an estimate equals the reference exactly (MSE 0)"
                if m == "psnr"
                else "NaN on every scored slice (an image below the metric's smallest side, "
                "or an empty region)"
            )
            notes.append(f"{m} is null: {reason}")
    return out, notes


def load_input_volume(path: Path) -> tuple[np.ndarray, nib.spatialimages.SpatialImage]:
    """:func:`load_canonical` (3D, finite) that also refuses an empty or constant volume
    (VolumeError naming the file)."""
    volume, image = load_canonical(path)
    if volume.size == 0:
        raise VolumeError(f"volume {path} is empty (shape {image.shape})")
    if float(volume.max()) == float(volume.min()):
        raise VolumeError(f"volume {path} has no signal (every voxel is {float(volume.min()):g})")
    return volume, image


def _from_nifti(path: Path, bundle: dict, model_path: Path, multiple: int) -> dict[str, Any]:
    """Resample a NIfTI volume to the training grid and simulate the bundle's acquisition."""
    vol_ras, src_img = load_input_volume(path)
    prep = Preprocessing.from_dict(bundle["preprocessing"])
    voxel = ras_voxel_size(src_img)
    grid = training_grid(bundle, voxel, model_path)
    offset = background_offset(vol_ras)
    moved = np.moveaxis(vol_ras, grid.readout_axis, 0)
    spacing_in = in_plane(voxel, grid.readout_axis)
    resampled = to_training_grid(moved, spacing_in, grid.pixel_spacing_mm)
    resampled -= np.float32(offset)
    np.maximum(resampled, 0, out=resampled)
    try:
        scale = robust_scale(resampled, prep.scale_percentile)
    except VolumeError:
        raise VolumeError(f"volume {path} has no voxel above its background level") from None
    resampled *= np.float32(1.0 / scale)
    peak = float(resampled.max())
    frame, start = frame_window((resampled > 0.1 * peak).any(axis=0), prep.image_size, multiple)
    target = cut_frame(resampled, frame, start)
    mask = scaled_mask(_mask_of(bundle), frame)
    # the bundle's forward model, seeded by the file name: smooth or complex phase, coils, noise
    acquisition = simulate(target, prep, path.name)
    target = acquisition.target  # multicoil: the RSS of the noisy coil images
    plane = resampled.shape[1:]

    def to_volume(slices: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        back = from_training_grid(
            paste_frame(slices, plane, start), moved.shape[1:], spacing_in, grid.pixel_spacing_mm
        )
        ras = np.moveaxis(back * np.float32(scale) + np.float32(offset), 0, grid.readout_axis)
        return to_source_orientation(ras, src_img), src_img.affine, src_img

    return {
        "kspace": undersample(acquisition, mask),
        "mask": mask,
        "sensitivities": acquisition.sensitivities,
        "target": target,
        "scale": float(scale),
        "data_range": float(target.max()),
        "to_volume": to_volume,
        "geometry": {
            "intensity_offset": offset,
            "input_shape": list(src_img.shape[:3]),
            "input_voxel_mm": [round(float(v), 4) for v in nib.affines.voxel_sizes(src_img.affine)],
            "input_orientation": "".join(nib.aff2axcodes(src_img.affine)),
            "training_pixel_mm": [round(v, 4) for v in grid.pixel_spacing_mm],
            "training_grid_recorded": grid.recorded,
            "frame": list(frame),
            "acceleration": float(mask.size / max(1, int(mask.sum()))),
        },
    }


def _from_shard(path: Path, bundle: dict, model_path: Path, multiple: int) -> dict[str, Any]:
    """Read a shard's k-space under the model's mask and its target; find its source grid if the
    source volume exists. (``multiple``: unused, the shard's frame already fits the network.)"""
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
        if prep_dict != recorded(bundle.get("preprocessing") or {}):
            log.warning("model %s and shard %s differ in preprocessing", model_path, path)
        kspace, target = reader.read_kspace(), reader.read_target()
        sensitivities = reader.sensitivities
        slice_index = np.asarray(reader.slice_index)
        scale, data_range = float(reader.attrs["scale"]), float(reader.attrs["data_range"])
        prep = reader.preprocessing
        source = str(reader.attrs.get("source_file") or "")
        stack = np.eye(4)
        if reader.attrs.get("source_format") == "fastmri":  # measured k-space: no NIfTI source
            from ssimrecon.evaluation.reconstruct_kspace import stack_affine

            source, stack = "", stack_affine(reader.pixel_spacing, reader.slice_thickness_mm)

    def to_volume(slices: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        if not (source and Path(source).is_file()):
            return np.moveaxis(slices, 0, -1) * scale, stack, None
        vol_ras, src_img = load_canonical(source)
        ras = slices_to_volume(slices, prep, vol_ras.shape, slice_index)
        return to_source_orientation(ras, src_img) * scale, src_img.affine, src_img

    if not (source and Path(source).is_file()) and stack[0, 0] == 1 and stack[1, 1] == 1:
        log.warning(
            "source volume %r of shard %s not found: writing stacked slices (H, W, S) with an "
            "identity affine",
            source,
            path,
        )
    return {
        "kspace": kspace,
        "mask": model_mask,
        "sensitivities": sensitivities,
        "target": target,
        "scale": scale,
        "data_range": data_range,
        "to_volume": to_volume,
        "geometry": {"intensity_offset": 0.0, "frame": list(model_mask.shape)},
    }


def network_name(bundle: dict[str, Any], model_path: Path) -> str:
    """The bundle's ``extra.network``, else the model file's folder name (models/<network>/)."""
    name = (bundle.get("extra") or {}).get("network")
    return name if isinstance(name, str) and name else Path(model_path).resolve().parent.name


def _input_reader(input_path: Path, kind: str | None = None) -> Callable[..., dict[str, Any]]:
    """Check ``input_path`` is a readable file of a supported kind -> its reader function
    (``kind="fastmri"``: a fastMRI multi-coil file)."""
    if input_path.is_dir():
        raise SsimreconError(f"input {input_path} is a directory, not a NIfTI volume or shard")
    if not input_path.is_file():
        raise SsimreconError(f"input {input_path} does not exist")
    if kind == "fastmri":
        from ssimrecon.evaluation.reconstruct_kspace import from_fastmri

        return from_fastmri
    if file_suffix(input_path, NIFTI_SUFFIXES):
        return _from_nifti
    if file_suffix(input_path, SHARD_SUFFIXES):
        return _from_shard
    raise SsimreconError(
        f"input {input_path}: unsupported file type (expected .nii, .nii.gz, .h5 or .hdf5)"
    )


def reconstruct_loaded(
    model: torch.nn.Module,
    bundle: dict[str, Any],
    model_path: Path,
    input_path: Path,
    paths: dict[str, Path],
    *,
    device: torch.device,
    batch_size: int,
    kind: str | None = None,
) -> dict[str, Any]:
    """Reconstruct one input with a loaded model, write ``paths`` (:func:`output_paths`) all or
    nothing, return the metrics JSON's content (outputs checked by the caller)."""
    data = _input_reader(input_path, kind)(
        input_path, bundle, model_path, 2 ** int(bundle["model_config"].get("depth", 0))
    )
    target, kspace = data["target"], data["kspace"]
    zero_filled = np.abs(zero_filled_image(kspace, data["sensitivities"]))
    # the network's scale from the zero-filled volume alone, as in training (no reference statistic)
    scale = input_scale(
        zero_filled, Preprocessing.from_dict(bundle["preprocessing"]).scale_percentile
    )
    has_data = target.reshape(len(target), -1).max(axis=1) > 0
    maps = data["sensitivities"]
    if maps is not None and maps.ndim == 4:  # one estimate per slice (measured k-space)
        maps = maps[has_data]
    network = np.zeros_like(zero_filled)
    if has_data.any():
        network[has_data] = predict_slices(
            model,
            kspace[has_data],
            batch_size=batch_size,
            device=device,
            input_scale=scale,
            physics=Physics.of_bundle(bundle),
            mask=data["mask"],
            sensitivities=maps,
        )

    threshold = training_min_signal(bundle)
    signal = slice_signal_fraction(target, data["data_range"])
    scored = signal >= threshold
    notes = []
    if not scored.any():
        scored = has_data
        notes.append(f"no slice has slice_signal >= {threshold:g}: every slice with data scored")
    metrics = {}
    for method, estimate in (("zero_filled", zero_filled), ("network", network)):
        metrics[method], method_notes = score(target, estimate, data["data_range"], scored)
        notes += [f"{method}: {note}" for note in method_notes]
    result = {
        **metrics,
        "slices_total": int(len(target)),
        "slices_reconstructed": int(has_data.sum()),
        "slices_scored": int(scored.sum()),
        "min_signal_fraction": threshold,
        "data_range": data["data_range"],
        "scale": data["scale"],
        **data["geometry"],
        "network_name": network_name(bundle, model_path),
        "model": str(model_path),
        "input": str(input_path),
        "notes": notes,
    }
    volumes = {
        "network": data["to_volume"](network),
        "zero_filled": data["to_volume"](zero_filled),
    }
    _write_outputs(paths, volumes, json.dumps(result, indent=2) + "\n")
    log.info(
        "%s: SSIM zero-filled %.4f -> network %.4f over %d of %d slices; wrote %s",
        input_path,
        result["zero_filled"]["ssim"] or math.nan,
        result["network"]["ssim"] or math.nan,
        result["slices_scored"],
        result["slices_total"],
        paths["network"],
    )
    return result


def reconstruct(
    model_path: Path | str,
    input_path: Path | str,
    output: Path | str,
    *,
    device: str = "auto",
    batch_size: int = 8,
    kind: str | None = None,
) -> dict[str, Any]:
    """Reconstruct ``input_path`` with the model; write the outputs (see module docstring); return
    the metrics. ``kind="fastmri"``: ``input_path`` is a fastMRI multi-coil file."""
    model_path, input_path = Path(model_path), Path(input_path)
    paths = output_paths(Path(output))
    _input_reader(input_path, kind)
    check_outputs(paths, [input_path, model_path])
    dev = pick_device(device)
    model, bundle = load_model(model_path, dev)
    return reconstruct_loaded(
        model, bundle, model_path, input_path, paths, device=dev, batch_size=batch_size, kind=kind
    )
