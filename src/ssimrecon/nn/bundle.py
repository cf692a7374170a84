"""Model bundles: one file with a trained U-Net and everything needed to apply it.

A bundle is a ``torch.save``d dict holding only tensors, primitives, lists and dicts, so that it
loads
with ``torch.load(weights_only=True)`` (no arbitrary code runs when a bundle is opened)::

    {"format": "ssimrecon-model", "version": 1,
     "model_config": UNet.model_config, "state_dict": {name: tensor (cpu)},
     "preprocessing": dict, "mask": bool tensor (H,W), "mask_meta": dict, "extra": dict,
     "grid": {"orientation": "RAS", "readout_axis": int, "pixel_spacing_mm": [mm H, mm W],
              "slice_thickness_mm": float or None},
     "data_consistency": bool,
     "provenance": {"ssimrecon_version": str, "git_commit": str or None}}

The forward model the network was trained for is its preprocessing's ``forward_model`` (1 or 2
channels in ``model_config``), ``data_consistency`` whether it restores the sampled k-space
(:class:`ssimrecon.nn.reconstructor.Physics.of_bundle`; bundles from before either existed read
as magnitude data without data consistency).
``grid`` is the training grid in physical units (``ssimrecon.kspace.shards.ShardReader.grid``);
bundles written before it existed lack the key and still load (``reconstruct`` then warns and
assumes the input's voxel size times ``preprocessing.downsample``).

Loading refuses (CheckpointError naming the file) weights that are NaN or infinite, and a
``model_config`` whose network does not match the stored weights, checked on torch's ``meta`` device
before any memory is allocated for it.

Files are written atomically (``ssimrecon.atomic``: temporary file in the same folder, fsync,
``os.replace``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssimrecon.atomic import atomic_output
from ssimrecon.errors import CheckpointError, SsimreconError
from ssimrecon.kspace.mask import load_mask
from ssimrecon.kspace.shards import ShardReader
from ssimrecon.nn.unet import UNet
from ssimrecon.plain import to_plain

FORMAT = "ssimrecon-model"
VERSION = 1
REQUIRED_KEYS = (
    "format",
    "version",
    "model_config",
    "state_dict",
    "preprocessing",
    "mask",
    "mask_meta",
    "extra",
)

__all__ = [
    "FORMAT",
    "VERSION",
    "save_model_bundle",
    "load_model_bundle",
    "atomic_torch_save",
    "safe_torch_load",
    "load_tagged",
    "BundleMetadata",
    "bundle_metadata",
]


def atomic_torch_save(obj: dict, path: str | os.PathLike) -> None:
    """torch.save to a temporary file next to ``path``, fsync, then os.replace (never a partial
    file)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


@functools.cache
def provenance() -> dict[str, str | None]:
    """The installed ssimrecon version and the git commit of its source checkout (None when the
    package is not run from a git checkout, or the checkout has uncommitted changes: then
    ``<commit>-dirty``)."""
    try:
        package_version: str | None = version("ssimrecon")
    except PackageNotFoundError:
        package_version = None
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return {
        "ssimrecon_version": package_version,
        "git_commit": (commit + ("-dirty" if dirty else "")) or None,
    }


def _unwrap(model: nn.Module) -> nn.Module:
    """Strip torch.compile / DataParallel wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model) if not isinstance(model, UNet) else model


def save_model_bundle(
    path: str | os.PathLike,
    *,
    model: UNet,
    preprocessing: dict,
    mask: np.ndarray | torch.Tensor,
    mask_meta: dict,
    extra: dict,
    grid: dict | None,
    data_consistency: bool = False,
) -> None:
    """Write a model bundle atomically; ``mask`` is the (H,W) sampling mask (stored as a bool
    tensor), ``grid`` the training grid (None: not known, as in bundles of older versions),
    ``data_consistency`` whether the network restores the sampled k-space (``model.
    data_consistency``)."""
    net = _unwrap(model)
    config = getattr(net, "model_config", None)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: model has no model_config dict (is it a ssimrecon UNet?)")
    mask_t = (
        torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        .detach()
        .cpu()
    )
    if mask_t.dtype != torch.bool:
        raise CheckpointError(f"{path}: mask must be boolean, got {mask_t.dtype}")
    bundle = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": to_plain(config, "model_config"),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "preprocessing": to_plain(preprocessing, "preprocessing"),
        "mask": mask_t,
        "mask_meta": to_plain(mask_meta, "mask_meta"),
        "extra": to_plain(extra, "extra"),
        "provenance": provenance(),
        "data_consistency": bool(data_consistency),
    }
    if grid is not None:
        bundle["grid"] = to_plain(grid, "grid")
    atomic_torch_save(bundle, path)


def _brief(exc: BaseException, limit: int = 300) -> str:
    """One-line summary of an exception message."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:  # torch's weights_only message: keep the reason, drop the advice around it
        text = (
            text.split(marker, 1)[1]
            .split(" Please use", 1)[0]
            .split(" Check the documentation", 1)[0]
        )
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """torch.load(weights_only=True) with CheckpointError naming the file on any failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, zipfile errors, ...
        raise CheckpointError(
            f"{path}: refused to load: not a plain-tensor checkpoint "
            f"(torch.load(weights_only=True) failed: {type(exc).__name__}: {_brief(exc)})"
        ) from exc


def load_tagged(
    path: str | os.PathLike,
    fmt: str,
    version: int,
    what: str,
    map_location: str | torch.device = "cpu",
) -> dict:
    """:func:`safe_torch_load` of a dict whose ``format``/``version`` keys are ``fmt``/``version``.

    ``what`` names the kind of file in the CheckpointError raised for any other file.
    """
    obj = safe_torch_load(path, map_location)
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise CheckpointError(f"{path}: not an ssimrecon {what} (format key is not {fmt!r})")
    if obj.get("version") != version:
        raise CheckpointError(
            f"{path}: unsupported {what} version {obj.get('version')!r} (this ssimrecon reads "
            f"{version})"
        )
    return obj


def load_model_bundle(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[UNet, dict]:
    """Load a bundle written by :func:`save_model_bundle` -> (UNet in eval mode on map_location,
    bundle dict)."""
    bundle = load_tagged(path, FORMAT, VERSION, "model bundle", map_location)
    missing = [k for k in REQUIRED_KEYS if k not in bundle]
    if missing:
        raise CheckpointError(f"{path}: model bundle is missing keys {missing}")
    if not isinstance(bundle.get("grid", {}), dict):
        raise CheckpointError(f"{path}: grid is not a dict")
    if not isinstance(bundle.get("data_consistency", False), bool):
        raise CheckpointError(f"{path}: data_consistency is not a boolean")
    if not isinstance(bundle["model_config"], dict):
        raise CheckpointError(f"{path}: model_config is not a dict")
    mask = bundle["mask"]
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 2:
        raise CheckpointError(f"{path}: mask must be a 2-D bool tensor")
    state = bundle["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: state_dict is not a dict of tensors")
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: weights hold NaN or infinite values ({name})")
    try:
        with torch.device("meta"):  # shapes only: a huge declared network allocates nothing
            model = UNet(**bundle["model_config"])
    except (SsimreconError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: bad model_config {bundle['model_config']!r}: {exc}"
        ) from exc
    try:
        # assign=True: the parameters become the loaded tensors (on map_location)
        model.load_state_dict(state, assign=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: weights do not match model_config: {_brief(exc)}") from exc
    return model.to(map_location).eval(), bundle


@dataclasses.dataclass(frozen=True)
class BundleMetadata:
    """What a bundle records about the data its network was trained on: the shards'
    ``preprocessing`` (dict), the sampling ``mask`` (H, W) bool, ``mask_meta`` {seed,
    acceleration: the mask's achieved acceleration} and the training ``grid``
    (:attr:`ssimrecon.kspace.shards.ShardReader.grid`)."""

    preprocessing: dict[str, Any]
    mask: np.ndarray
    mask_meta: dict[str, Any]
    grid: dict[str, Any]


def bundle_metadata(shard: Path, mask_path: Path) -> BundleMetadata:
    """The :class:`BundleMetadata` of training on ``shard`` (any of the run's shards: they share
    preprocessing and grid) with the mask file at ``mask_path``."""
    with ShardReader(shard) as reader:
        preprocessing, grid = reader.preprocessing.to_dict(), reader.grid
    mask, meta = load_mask(mask_path)
    return BundleMetadata(
        preprocessing,
        mask,
        {"seed": meta["seed"], "acceleration": meta["achieved_acceleration"]},
        grid,
    )
