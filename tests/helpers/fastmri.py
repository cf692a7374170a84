"""Small fastMRI multi-coil brain files of the published layout (facebookresearch/fastMRI,
``fastmri/data/mri_data.py`` and ``fastmri/data/README.md``), built with numpy only.

The transforms are fastMRI's own, written with numpy (``fastmri.fft2c`` / ``fastmri.ifft2c``:
``fftshift(fft(ifftshift(x)), norm="ortho")`` over the image axes), not this package's, so a test
comparing the reader's images with ``reconstruction_rss`` checks the package against fastMRI.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np

_AXES = (-2, -1)
_NS = "http://www.ismrm.org/ISMRMRD"


def fastmri_fft2c(x: np.ndarray) -> np.ndarray:
    """fastMRI's ``fft2c`` in numpy: centred orthonormal FFT over the last two axes."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=_AXES), norm="ortho"), axes=_AXES)


def fastmri_ifft2c(k: np.ndarray) -> np.ndarray:
    """fastMRI's ``ifft2c`` in numpy: its inverse."""
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=_AXES), norm="ortho"), axes=_AXES)


def fastmri_rss_target(kspace: np.ndarray, recon: tuple[int, int]) -> np.ndarray:
    """``reconstruction_rss`` as fastMRI forms it from (S, C, H, W) k-space: ifft2c per coil,
    magnitude, root sum of squares over coils, centre crop (``transforms.center_crop``'s rule) ->
    (S, *recon) float32."""
    rss = np.sqrt(np.sum(np.abs(fastmri_ifft2c(kspace)) ** 2, axis=1))
    h, w = recon
    top, left = (rss.shape[-2] - h) // 2, (rss.shape[-1] - w) // 2
    return rss[..., top : top + h, left : left + w].astype(np.float32)


def ismrmrd_xml(
    encoded: tuple[int, int, int],
    recon: tuple[int, int, int],
    limits: tuple[int, int],
    *,
    encoded_fov_mm: tuple[float, float, float] | None = (440.0, 220.0, 5.0),
    recon_fov_mm: tuple[float, float, float] | None = (220.0, 220.0, 5.0),
    n_coils: int = 4,
) -> bytes:
    """An ISMRMRD header (schema element order) with the fields fastMRI reads: encoded and recon
    ``matrixSize`` (x, y, z), ``fieldOfView_mm`` (left out when None), ``encodingLimits``
    ``kspace_encoding_step_1`` (center, maximum) = ``limits``. Also holds elements a careless
    query would pick instead: ``kspace_encoding_step_0`` limits and the ``parallelImaging``
    acceleration factor's ``kspace_encoding_step_1``."""

    def xyz(tag: str, values: tuple) -> str:
        return f"<{tag}><x>{values[0]}</x><y>{values[1]}</y><z>{values[2]}</z></{tag}>"

    def space(tag: str, matrix: tuple, fov: tuple | None) -> str:
        return (
            f"<{tag}>{xyz('matrixSize', matrix)}{xyz('fieldOfView_mm', fov) if fov else ''}</{tag}>"
        )

    center, maximum = limits
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<ismrmrdHeader xmlns="{_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<acquisitionSystemInformation><systemVendor>SIEMENS</systemVendor>"
        f"<receiverChannels>{n_coils}</receiverChannels></acquisitionSystemInformation>"
        "<encoding>"
        f"{space('encodedSpace', encoded, encoded_fov_mm)}"
        f"{space('reconSpace', recon, recon_fov_mm)}"
        "<encodingLimits>"
        f"<kspace_encoding_step_0><minimum>0</minimum><maximum>{encoded[0] - 1}</maximum>"
        f"<center>{encoded[0] // 2}</center></kspace_encoding_step_0>"
        f"<kspace_encoding_step_1><minimum>0</minimum><maximum>{maximum}</maximum>"
        f"<center>{center}</center></kspace_encoding_step_1>"
        "<slice><minimum>0</minimum><maximum>0</maximum><center>0</center></slice>"
        "</encodingLimits>"
        "<trajectory>cartesian</trajectory>"
        "<parallelImaging><accelerationFactor><kspace_encoding_step_1>2</kspace_encoding_step_1>"
        "<kspace_encoding_step_2>1</kspace_encoding_step_2></accelerationFactor>"
        "<calibrationMode>other</calibrationMode></parallelImaging>"
        "</encoding></ismrmrdHeader>"
    ).encode()


def _soft_inside(q: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(np.clip((q - 1) * 10, -50, 50)))


def head_coil_images(
    n_slices: int, n_coils: int, shape: tuple[int, int], seed: int = 0
) -> np.ndarray:
    """(S, C, H, W) complex128 coil images of a smooth head (scalp ring, brain, two ventricles,
    a smooth phase) filling the central half of the rows (the 2x oversampled readout), each coil
    a Gaussian sensitivity around the head with its own constant phase."""
    h, w = shape
    rng = np.random.default_rng(seed)
    u, v = np.meshgrid(
        (np.arange(h) - h / 2) / (h / 4), (np.arange(w) - w / 2) / (w / 2), indexing="ij"
    )
    angles = 2 * np.pi * np.arange(n_coils) / n_coils
    sens = (
        np.exp(
            -(
                (u - 1.3 * np.cos(angles)[:, None, None]) ** 2
                + (v - 1.3 * np.sin(angles)[:, None, None]) ** 2
            )
            / (2 * 0.9**2)
        )
        * np.exp(1j * angles)[:, None, None]
    )
    out = np.zeros((n_slices, n_coils, h, w), dtype=np.complex128)
    for s in range(n_slices):
        grow = 0.55 + 0.4 * np.sin(np.pi * (s + 0.5) / n_slices)
        du, dv = rng.uniform(-0.05, 0.05, 2)
        head = _soft_inside(((u - du) / (0.85 * grow)) ** 2 + ((v - dv) / (0.7 * grow)) ** 2)
        brain = _soft_inside(((u - du) / (0.75 * grow)) ** 2 + ((v - dv) / (0.6 * grow)) ** 2)
        ventricles = sum(
            _soft_inside(((u - du) / (0.25 * grow)) ** 2 + ((v - dv - side) / (0.1 * grow)) ** 2)
            for side in (-0.15, 0.15)
        )
        image = 0.5 * head + 0.4 * brain - 0.5 * ventricles
        phase = np.exp(1j * (0.4 * u + 0.3 * v + 0.2 * s))
        out[s] = image * phase * sens
    return out


def column_mask(width: int, acceleration: int = 4, seed: int = 0) -> np.ndarray:
    """(W,) bool: the central 8 % of columns and random others, ~1/acceleration in all."""
    rng = np.random.default_rng(seed)
    mask = rng.random(width) < 1 / acceleration
    centre = max(2, round(0.08 * width))
    mask[(width - centre) // 2 : (width - centre) // 2 + centre] = True
    return mask


def write_fastmri_file(
    path: Path,
    *,
    n_slices: int = 4,
    n_coils: int = 4,
    shape: tuple[int, int] = (64, 32),
    recon: tuple[int, int] = (32, 32),
    acquisition: str = "AXT1",
    with_rss: bool = True,
    with_mask: bool = False,
    seed: int = 0,
    limits: tuple[int, int] | None = None,
) -> dict[str, np.ndarray | None]:
    """Write a fastMRI multi-coil file at ``path``; returns its ``kspace``, ``rss``, ``mask``.

    ``kspace`` (S, C, H, W) complex64 = fastMRI's fft2c of :func:`head_coil_images` (times the
    mask's columns with ``with_mask``, as in test-set files); ``reconstruction_rss`` (with
    ``with_rss``) :func:`fastmri_rss_target` of the fully sampled k-space at ``recon``;
    ``ismrmrd_header`` :func:`ismrmrd_xml` (encoded (H, W, 1), recon (*recon, 1), ``limits``
    default (W // 2, W - 1): no padding); attributes ``acquisition``, ``patient_id`` and, with
    the RSS, ``max`` and ``norm`` of it (float64); with the mask, ``acceleration``."""
    h, w = shape
    kspace = fastmri_fft2c(head_coil_images(n_slices, n_coils, shape, seed)).astype(np.complex64)
    rss = fastmri_rss_target(kspace, recon) if with_rss else None
    mask = column_mask(w, seed=seed) if with_mask else None
    if mask is not None:
        kspace = kspace * mask.astype(np.complex64)
    fov = 220.0
    xml = ismrmrd_xml(
        (h, w, 1),
        (*recon, 1),
        (w // 2, w - 1) if limits is None else limits,
        encoded_fov_mm=(fov * h / recon[0], fov * w / recon[1], 5.0),
        recon_fov_mm=(fov, fov, 5.0),
        n_coils=n_coils,
    )
    with h5py.File(path, "w") as hf:
        hf.create_dataset("kspace", data=kspace)
        if rss is not None:
            hf.create_dataset("reconstruction_rss", data=rss)
            hf.attrs["max"] = float(rss.max())
            hf.attrs["norm"] = float(np.linalg.norm(rss))
        if mask is not None:
            hf.create_dataset("mask", data=mask)
            hf.attrs["acceleration"] = 4
        hf.create_dataset("ismrmrd_header", data=xml)
        hf.attrs["acquisition"] = acquisition
        hf.attrs["patient_id"] = hashlib.sha256(f"patient{seed}".encode()).hexdigest()
    return {"kspace": kspace, "rss": rss, "mask": mask}
