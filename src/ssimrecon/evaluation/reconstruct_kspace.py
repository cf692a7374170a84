"""``ssimrecon reconstruct --kspace FILE.h5``: a trained multicoil model applied to the measured
k-space of one fastMRI multi-coil file.

The file becomes slices as a shard of ``source.fastmri`` does
(:func:`~ssimrecon.kspace.fastmri_source.read_measured` with the bundle's preprocessing, every
slice: oversampling crop to the recon matrix, frame of the model's image size, RSS target, coils
compressed to the bundle's ``coils``, the volume's robust scale); the bundle's mask undersamples
the measured coil k-space retrospectively (every coil under the same 2D mask, a simulation on
measured data); the sensitivities are estimated per slice from the centre square the mask samples
fully (:func:`~ssimrecon.kspace.fastmri_source.calibration_size_of`). The outputs are
:func:`ssimrecon.evaluation.reconstruct.reconstruct`'s: the reconstruction and the zero-filled
(SENSE-combined) input as NIfTI stacks (rows, columns, slices) at the RSS reference's intensities
(times the scale: the scanner's units), affine :func:`stack_affine`, and the metrics JSON of both
against the RSS reference.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.fastmri_source import (
    DEFAULT_SPACING_MM,
    calibration_size_of,
    read_measured,
)
from ssimrecon.kspace.preprocess import Preprocessing


def stack_affine(
    pixel_spacing: tuple[float, float], slice_thickness_mm: float | None
) -> np.ndarray:
    """The affine of a stack (rows, columns, slices): ``diag(dy, dx, dz, 1)``, dz the slice
    thickness (1 mm when unknown); the stack keeps the file's array order (fastMRI files record
    no patient orientation)."""
    dz = slice_thickness_mm if slice_thickness_mm else DEFAULT_SPACING_MM
    return np.diag([float(pixel_spacing[0]), float(pixel_spacing[1]), float(dz), 1.0])


def from_fastmri(path: Path, bundle: dict, model_path: Path, multiple: int) -> dict[str, Any]:
    """The reconstruct input of a fastMRI file (module docstring); SsimreconError naming the
    model and the file when the model was not trained on multicoil data or its mask does not fit.
    (``multiple``: unused, the model's image size already fits the network.)"""
    prep = Preprocessing.from_dict(bundle["preprocessing"])
    if prep.forward_model != "multicoil":
        raise SsimreconError(
            f"model {model_path} was trained on {prep.forward_model} data "
            f"(preprocessing.forward_model); --kspace {path} is measured multi-coil k-space: use "
            "a model trained with forward_model multicoil (e.g. on source.fastmri)"
        )
    mask = bundle["mask"].cpu().numpy().astype(bool)
    if mask.shape != tuple(prep.image_size):
        raise SsimreconError(
            f"model {model_path}: mask {mask.shape} does not match its image size "
            f"{tuple(prep.image_size)}"
        )
    calibration = calibration_size_of(mask)
    if calibration < 1:
        raise SsimreconError(
            f"model {model_path}: its mask samples no centre square to estimate the coil "
            f"sensitivities of {path} from"
        )
    measured = read_measured(path, dataclasses.replace(prep, slice_stride=1), calibration)
    scale = measured.scale
    affine = stack_affine(measured.pixel_spacing, measured.slice_thickness_mm)

    def to_volume(slices: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        return np.moveaxis(slices, 0, -1) * np.float32(scale), affine, None

    return {
        "kspace": (measured.coil_kspace * mask.astype(np.float32)).astype(np.complex64),
        "mask": mask,
        "sensitivities": measured.sensitivities,
        "target": measured.target,
        "scale": scale,
        "data_range": measured.data_range,
        "to_volume": to_volume,
        "geometry": {
            "intensity_offset": 0.0,
            "frame": list(mask.shape),
            "pixel_spacing_mm": [round(v, 4) for v in measured.pixel_spacing],
            "slice_thickness_mm": measured.slice_thickness_mm,
            "acquisition": measured.acquisition,
            "file_coils": measured.file_coils,
            "coils": prep.coils,
            "calibration_size": calibration,
            "acceleration": float(mask.size / max(1, int(mask.sum()))),
            "undersampling": "retrospective 2D variable-density mask on measured k-space",
        },
    }
