"""Image-quality test inputs: real brain slices, and piq (the independent implementation)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

import nibabel as nib
import numpy as np


def mni_slices(axial: tuple[int, ...] = (70, 90, 110)) -> tuple[np.ndarray, float]:
    """Axial slices (S, 197, 233) float64 of the MNI152 2009a T1 template (real anatomy, zero
    background; the nilearn wheel's file the demo uses), divided by the 99th percentile of their
    voxels > 0 as preprocessing does; returns (slices, data_range = their maximum)."""
    from ssimrecon.data.anatomy import MNI_T1, NILEARN_PIN, package_file

    volume = nib.load(str(package_file("nilearn", MNI_T1, NILEARN_PIN))).get_fdata()
    slices = np.stack([volume[:, :, z] for z in axial]).astype(np.float64)
    slices /= np.percentile(slices[slices > 0], 99)
    return slices, float(slices.max())


def piq_module(name: str) -> Any:
    """piq 0.8.0's module ``piq.<name>`` (the independent implementation the metric tests compare
    against), imported without running ``piq/__init__.py``: that file also imports piq's LPIPS and
    DISTS, which need torchvision, and PyPI's torchvision builds for torch 2.13.0 are CUDA builds
    that cannot load beside the CPU torch.  The metrics used here import only torch and piq's own
    ``utils`` and ``functional``."""
    if "piq" not in sys.modules:
        spec = importlib.util.find_spec("piq")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("piq is not installed (make .venv/.installed installs it)")
        package = types.ModuleType("piq")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["piq"] = package
    return importlib.import_module(f"piq.{name}")
