"""Run a trained network over undersampled k-space slices, and check a model fits a shard.

The network input is the magnitude of the zero-filled reconstruction ``|ifft2c(kspace)|`` divided by
the volume's input scale (:func:`~ssimrecon.kspace.preprocess.input_scale`, from that zero-filled
magnitude alone, as in training) as a (B, 1, H, W) float32 batch; the output times the scale is the
reconstruction on the k-space's (the reference's) intensity axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.fft import zero_filled_magnitude_torch
from ssimrecon.kspace.preprocess import recorded


def predict_slices(
    model: torch.nn.Module,
    kspace: np.ndarray,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    *,
    input_scale: float,
) -> np.ndarray:
    """Reconstruct k-space slices (S, H, W) complex -> (S, H, W) float32 with ``model`` in eval
    mode: ``model(zero_filled / input_scale) * input_scale``.

    ``input_scale``: the volume's (every slice's, not only those given)
    :func:`~ssimrecon.kspace.preprocess.input_scale`, e.g.
    :meth:`~ssimrecon.kspace.shards.ShardReader.input_scale`.

    ``device`` None keeps the model where it is; otherwise the model is moved there.
    """
    kspace = np.asarray(kspace)
    if kspace.ndim != 3:
        raise SsimreconError(f"expected k-space of shape (S, H, W), got {kspace.shape}")
    if batch_size < 1:
        raise SsimreconError(f"batch size must be >= 1, got {batch_size}")
    if not (np.isfinite(input_scale) and input_scale > 0):
        raise SsimreconError(f"input scale must be positive and finite, got {input_scale}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    model = model.to(device)
    was_training = model.training
    model.eval()
    out = np.empty(kspace.shape, dtype=np.float32)
    try:
        with torch.no_grad():
            for start in range(0, kspace.shape[0], batch_size):
                chunk = np.ascontiguousarray(kspace[start : start + batch_size], dtype=np.complex64)
                k = torch.from_numpy(chunk).to(device)
                x = zero_filled_magnitude_torch(k).unsqueeze(1) / float(input_scale)
                y = model(x)
                if y.shape != x.shape:
                    raise SsimreconError(
                        f"model output shape {tuple(y.shape)} != input shape {tuple(x.shape)}"
                    )
                out[start : start + len(chunk)] = (
                    (y[:, 0].float() * float(input_scale)).cpu().numpy()
                )
    finally:
        model.train(was_training)
    return out


def check_model_matches(
    bundle: dict[str, Any],
    *,
    mask: np.ndarray,
    preprocessing: dict[str, Any] | None,
    model_path: Path | str,
    data_path: Path | str,
    ignore_keys: tuple[str, ...] = ("slice_stride",),
) -> None:
    """Raise SsimreconError naming both files unless the model was trained for this data.

    Compared: image size and undersampling mask (``bundle["mask"]`` vs the shard's), and the
    preprocessing that shapes the images (all fields but ``ignore_keys``; slice selection only
    changes which slices exist, not what they look like).
    """
    model_mask = bundle["mask"]
    model_mask = (
        model_mask.cpu().numpy() if isinstance(model_mask, torch.Tensor) else np.asarray(model_mask)
    )
    model_mask = model_mask.astype(bool)
    mask = np.asarray(mask).astype(bool)
    if model_mask.shape != mask.shape:
        raise SsimreconError(
            f"model {model_path} was trained on {model_mask.shape[0]}x{model_mask.shape[1]} "
            "images but "
            f"{data_path} has {mask.shape[0]}x{mask.shape[1]} images"
        )
    if not np.array_equal(model_mask, mask):
        raise SsimreconError(
            f"model {model_path} was trained with another undersampling mask than {data_path} "
            f"({int((model_mask != mask).sum())} of {mask.size} samples differ)"
        )
    theirs = recorded(bundle.get("preprocessing") or {})
    if preprocessing is not None:
        keys = (set(theirs) | set(preprocessing)) - set(ignore_keys)
        diff = sorted(k for k in keys if theirs.get(k) != preprocessing.get(k))
        if diff:
            detail = ", ".join(
                f"{k}: model {theirs.get(k)!r} vs data {preprocessing.get(k)!r}" for k in diff
            )
            raise SsimreconError(
                f"model {model_path} and {data_path} differ in preprocessing ({detail})"
            )
