"""Which torch device a setting names: the one home of device resolution.

``--device`` of evaluate/figure2/reconstruct and ``training.device`` both go through
:func:`pick_device`; training limits the types to :data:`TRAIN_DEVICE_TYPES`
(:func:`resolve_device`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssimrecon.errors import SsimreconError

__all__ = ["TRAIN_DEVICE_TYPES", "pick_device", "resolve_device"]

TRAIN_DEVICE_TYPES = ("cpu", "cuda")  # training is only tested on these (no MPS, even for "auto")


def pick_device(
    name: str = "auto", *, key: str = "--device", types: Sequence[str] | None = None
) -> torch.device:
    """The torch device for the setting ``name`` (``--device``, ``training.device``); errors start
    with ``key``.

    ``auto`` -> CUDA if available, else Apple MPS if available (and allowed), else CPU; otherwise
    ``torch.device(name)``, which must parse and, for CUDA, be available. ``types`` (e.g. ``("cpu",
    "cuda")``) limits the accepted device types; None accepts any that torch knows.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if (types is None or "mps" in types) and mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise SsimreconError(f"{key}: {name!r} is not a device ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SsimreconError(f"{key}: {name!r} requested but CUDA is not available")
    if types is not None and device.type not in types:
        raise SsimreconError(f"{key}: only {' and '.join(types)} are supported, got {name!r}")
    return device


def resolve_device(setting: str) -> torch.device:
    """``training.device`` -> device: 'auto' -> cuda if available else cpu; only cpu and cuda are
    accepted; errors start with ``training.device``."""
    return pick_device(setting, key="training.device", types=TRAIN_DEVICE_TYPES)
