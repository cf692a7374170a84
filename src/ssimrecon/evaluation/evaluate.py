"""Metrics of zero-filled or network reconstructions: per slice and region, and per volume.

Every slice of every shard is scored; nothing is dropped here.  Two tables come out:

- **slices** (paper convention), two rows per slice, one per region: ``subject, slice, slice_signal,
  passes_filter, region, pixels`` and one column per metric of
  :data:`ssimrecon.functional.registry.REGISTRY` (``ssim, psnr, rel_error, mse, haarpsi, vif,
  gmsd, ms_ssim, hfen``).  ``slice`` is the slice's index in
  the canonical (RAS) volume along the readout axis (the shard's ``slice_index``); ``slice_signal``
  the fraction of reference pixels above 10 % of data_range (stored in the shard); ``passes_filter``
  whether ``slice_signal >= min_signal_fraction`` (the slice filter Table 1 applies to its main
  numbers); ``region`` is ``frame`` (every pixel) or ``head``
  (:func:`ssimrecon.functional.regions.head_mask` of the reference); ``pixels`` the region's pixel
  count.  ``data_range`` = the shard's ``attrs["data_range"]`` (the scaled reference volume's
  maximum).  A region without a scored pixel gives NaN metrics (see
  :func:`ssimrecon.functional.metrics.batch_metrics`); so does an image below a metric's smallest
  side (e.g. VIF below 41 pixels; docs/definitions.md, "Perceptual and edge metrics"): such rows
  are written, NaN, and left out of Table 1's statistics with a note.
- **volumes** (fastMRI convention), one row per shard over all its slices: ``subject, slices,
  data_range, ssim, psnr, nmse, mse`` (:func:`ssimrecon.functional.metrics.fastmri_volume_metrics`).

The filter and both regions depend only on the reference, so every method is scored on exactly the
same slices and pixels.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ssimrecon.device import pick_device
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.inference import check_model_matches, predict_slices
from ssimrecon.functional.metrics import FASTMRI_METRICS, fastmri_volume_metrics
from ssimrecon.functional.regions import head_mask
from ssimrecon.functional.registry import REGISTRY, metric_values
from ssimrecon.kspace.mask import load_mask
from ssimrecon.kspace.shards import ShardReader
from ssimrecon.nn.bundle import load_model_bundle
from ssimrecon.nn.reconstructor import Physics
from ssimrecon.progress import track

log = logging.getLogger(__name__)

#: regions every slice is scored in, in table order
REGIONS = ("frame", "head")
SLICE_COLUMNS = (
    "subject",
    "slice",
    "slice_signal",
    "passes_filter",
    "region",
    "pixels",
    *REGISTRY,
)
VOLUME_COLUMNS = ("subject", "slices", "data_range", *FASTMRI_METRICS)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_shards` returns: ``slices`` and ``volumes`` as described above."""

    slices: pd.DataFrame
    volumes: pd.DataFrame


def shard_preprocessing(reader: ShardReader) -> dict:
    """The shard's preprocessing as a plain dict (as stored in model bundles)."""
    return reader.preprocessing.to_dict()


def load_model(model_path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Load a model bundle onto ``device``; errors name the file."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise SsimreconError(f"model file not found: {model_path}")
    model, bundle = load_model_bundle(model_path, map_location="cpu")
    return model.to(device).eval(), bundle


def score_volume(
    subject: str,
    slice_index: np.ndarray,
    slice_signal: np.ndarray,
    target: np.ndarray,
    estimate: np.ndarray,
    data_range: float,
    min_signal_fraction: float,
) -> tuple[pd.DataFrame, dict]:
    """Slice rows (both regions) and the fastMRI volume row of one subject's (S,H,W) slices."""
    passes = np.asarray(slice_signal) >= min_signal_fraction
    regions = {"frame": None, "head": head_mask(target, data_range)}
    frames = []
    for name in REGIONS:
        region = regions[name]
        pixels = np.full(len(target), target[0].size) if region is None else region.sum(axis=(1, 2))
        values = metric_values(target, estimate, data_range, region)
        frames.append(
            pd.DataFrame(
                {
                    "subject": subject,
                    "slice": np.asarray(slice_index).astype(int),
                    "slice_signal": np.asarray(slice_signal, dtype=np.float64),
                    "passes_filter": passes,
                    "region": name,
                    "pixels": pixels.astype(int),
                    **values,
                }
            )
        )
    volume = {"subject": subject, "slices": int(len(target))}
    volume.update(fastmri_volume_metrics(target, estimate))
    return pd.concat(frames, ignore_index=True), volume


def evaluate_shards(
    shard_paths: Sequence[Path | str],
    *,
    method: str,
    mask_path: Path | str,
    model_path: Path | str | None,
    min_signal_fraction: float,
    batch_size: int = 8,
    device: str | torch.device = "auto",
) -> Evaluation:
    """Metrics of ``method`` (its name in progress and logs: the run, or ``zero-filled``) over all
    shards undersampled with the mask file at ``mask_path``; ``model_path`` None scores the
    zero-filled input itself (its magnitude; multicoil: of the SENSE combination with the shard's
    sensitivities, :func:`~ssimrecon.kspace.forward.zero_filled_image`)."""
    if not shard_paths:
        raise SsimreconError("no shards given to evaluate")
    mask, _ = load_mask(mask_path)
    dev = pick_device(device) if isinstance(device, str) else device
    model, bundle = (None, None) if model_path is None else load_model(Path(model_path), dev)
    slice_frames, volumes = [], []
    for path in track([Path(p) for p in shard_paths], f"evaluate {method}", "volumes"):
        with ShardReader(path, mask) as reader:
            if bundle is not None:
                check_model_matches(
                    bundle,
                    mask=reader.mask,
                    preprocessing=shard_preprocessing(reader),
                    model_path=model_path,
                    data_path=path,
                )
            kspace = reader.read_kspace()
            zero_filled = np.abs(reader.zero_filled(kspace))
            sensitivities = reader.sensitivities
            scale = reader.input_scale()
            target = reader.read_target()
            subject = str(reader.attrs["subject"])
            data_range = float(reader.attrs["data_range"])
            slice_index = np.asarray(reader.slice_index)
            slice_signal = np.asarray(reader.slice_signal)
        if not (slice_signal >= min_signal_fraction).any():
            log.warning("%s: no slice has slice_signal >= %g", path, min_signal_fraction)
        if model is None:
            est = zero_filled
        else:
            est = predict_slices(
                model,
                kspace,
                batch_size,
                dev,
                input_scale=scale,
                physics=Physics.of_bundle(bundle),
                mask=mask,
                sensitivities=sensitivities,
            )
        rows, volume = score_volume(
            subject, slice_index, slice_signal, target, est, data_range, min_signal_fraction
        )
        slice_frames.append(rows)
        volumes.append(volume)
    slices = pd.concat(slice_frames, ignore_index=True)
    if not slices["passes_filter"].any():
        raise SsimreconError(
            f"no slice in {len(shard_paths)} shard(s) has slice_signal >= {min_signal_fraction}"
        )
    return Evaluation(
        slices=slices[list(SLICE_COLUMNS)],
        volumes=pd.DataFrame(volumes)[list(VOLUME_COLUMNS)],
    )
