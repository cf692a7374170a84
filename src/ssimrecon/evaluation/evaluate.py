"""Per-slice metrics (SSIM, PSNR, relative error, MSE) of zero-filled or network reconstructions.

One row per evaluated slice: ``subject, slice, ssim, psnr, rel_error, mse``, where ``slice`` is the
slice's index in the canonical (RAS) volume along the readout axis (the shard's ``slice_index``).
Each shard is compared with its own reference on the scaled intensity axis, with
``data_range = attrs["data_range"]`` (the reference volume's maximum after scaling).

Near-empty slices: a slice is evaluated only if its ``slice_signal`` (the fraction of reference
pixels
above 10 % of data_range, stored in the shard) is >= ``min_signal_fraction``. Slices outside the
head
are mostly background, where SSIM is undefined in spirit and PSNR is dominated by noise. The rule
depends only on the reference, so every method (zero-filled and each network) is scored on exactly
the same slices.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ssimrecon.device import pick_device
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.inference import check_model_matches, predict_slices
from ssimrecon.functional.metrics import METRICS, batch_metrics
from ssimrecon.kspace.fft import zero_filled_magnitude
from ssimrecon.kspace.shards import ShardReader
from ssimrecon.nn.bundle import load_model_bundle

log = logging.getLogger(__name__)

COLUMNS = ("subject", "slice", *METRICS)


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


def evaluate_shards(
    shard_paths: Sequence[Path | str],
    *,
    model_path: Path | str | None,
    min_signal_fraction: float,
    batch_size: int = 8,
    device: str | torch.device = "auto",
) -> pd.DataFrame:
    """Per-slice metrics over all shards; ``model_path`` None scores the zero-filled input
    itself."""
    if not shard_paths:
        raise SsimreconError("no shards given to evaluate")
    dev = pick_device(device) if isinstance(device, str) else device
    model, bundle = (None, None) if model_path is None else load_model(Path(model_path), dev)
    frames = []
    for path in map(Path, shard_paths):
        with ShardReader(path) as reader:
            if bundle is not None:
                check_model_matches(
                    bundle,
                    mask=reader.mask,
                    preprocessing=shard_preprocessing(reader),
                    model_path=model_path,
                    data_path=path,
                )
            keep = np.flatnonzero(np.asarray(reader.slice_signal) >= min_signal_fraction)
            if keep.size == 0:
                log.warning("%s: no slice has slice_signal >= %g", path, min_signal_fraction)
                continue
            kspace = reader.read_kspace()[keep]
            target = reader.read_target()[keep]
            subject = str(reader.attrs["subject"])
            data_range = float(reader.attrs["data_range"])
            slice_index = np.asarray(reader.slice_index)[keep]
        if model is None:
            est = zero_filled_magnitude(kspace)
        else:
            est = predict_slices(model, kspace, batch_size=batch_size, device=dev)
        values = batch_metrics(target, est, data_range)
        frames.append(
            pd.DataFrame({"subject": subject, "slice": slice_index.astype(int), **values})
        )
    if not frames:
        raise SsimreconError(
            f"no slice in {len(shard_paths)} shard(s) has slice_signal >= {min_signal_fraction}"
        )
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]
