"""Run a trained network over undersampled k-space slices, and check a model fits a shard.

The network is applied as :class:`~ssimrecon.nn.reconstructor.Reconstructor` says (one home for
training and evaluation): its input is the zero-filled reconstruction of the k-space divided by
the volume's input scale (:func:`~ssimrecon.kspace.preprocess.input_scale`, from that zero-filled
magnitude alone, as in training): ``|ifft2c(kspace)|`` (B, 1, H, W) for magnitude data, the
complex (multicoil: SENSE-combined) zero-filled image as 2 channels otherwise; with data
consistency the measured k-space is restored; the output magnitude times the scale is the
reconstruction on the k-space's (the reference's) intensity axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.preprocess import recorded
from ssimrecon.nn.reconstructor import Physics, Reconstructor


def predict_slices(
    model: torch.nn.Module,
    kspace: np.ndarray,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    *,
    input_scale: float,
    physics: Physics | None = None,
    mask: np.ndarray | None = None,
    sensitivities: np.ndarray | None = None,
) -> np.ndarray:
    """Reconstruct k-space slices (S, H, W) complex (multicoil: (S, C, H, W)) -> (S, H, W)
    float32 with ``model`` (the U-Net) in eval mode, applied as a
    :class:`~ssimrecon.nn.reconstructor.Reconstructor` of ``physics`` (None: magnitude data
    without data consistency, ``model(zero_filled / input_scale) * input_scale``) with the
    sampling ``mask`` (H, W) (needed for data consistency) and the multicoil ``sensitivities``
    (C, H, W), or one per slice (S, C, H, W) (measured k-space).

    ``input_scale``: the volume's (every slice's, not only those given)
    :func:`~ssimrecon.kspace.preprocess.input_scale`, e.g.
    :meth:`~ssimrecon.kspace.shards.ShardReader.input_scale`.

    ``device`` None keeps the model where it is; otherwise the model is moved there.
    """
    kspace = np.asarray(kspace)
    physics = physics or Physics()
    coils = physics.forward_model == "multicoil"
    if kspace.ndim != (4 if coils else 3):
        want = "(S, C, H, W)" if coils else "(S, H, W)"
        raise SsimreconError(f"expected k-space of shape {want}, got {kspace.shape}")
    if batch_size < 1:
        raise SsimreconError(f"batch size must be >= 1, got {batch_size}")
    if not (np.isfinite(input_scale) and input_scale > 0):
        raise SsimreconError(f"input scale must be positive and finite, got {input_scale}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    model = model.to(device)
    per_slice = sensitivities is not None and np.ndim(sensitivities) == 4
    recon = None if per_slice else Reconstructor(model, physics, mask, sensitivities).to(device)
    was_training = model.training
    model.eval()
    out = np.empty((kspace.shape[0], *kspace.shape[-2:]), dtype=np.float32)
    try:
        with torch.no_grad():
            for start in range(0, kspace.shape[0], batch_size):
                chunk = np.ascontiguousarray(kspace[start : start + batch_size], dtype=np.complex64)
                k = torch.from_numpy(chunk).to(device) / float(input_scale)
                if per_slice:
                    maps = np.asarray(sensitivities)[start : start + len(chunk)]
                    recon = Reconstructor(model, physics, mask, maps).to(device)
                assert recon is not None
                x = recon.network_input(k)
                y = recon(x, k if physics.data_consistency else None)
                if y.shape != (x.shape[0], 1, *x.shape[2:]):
                    raise SsimreconError(
                        f"model output shape {tuple(y.shape)} != input shape "
                        f"{(x.shape[0], 1, *x.shape[2:])}"
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
