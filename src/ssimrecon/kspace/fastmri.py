"""Read fastMRI multi-coil HDF5 files (Zbontar et al. 2018, arXiv:1811.08839; the brain set):
measured k-space by slice, the published RSS targets and the ISMRMRD header's geometry.

Layout of one file (one acquisition), as facebookresearch/fastMRI reads it
(``fastmri/data/mri_data.py``: ``SliceDataset``, ``_retrieve_metadata``, ``et_query``;
``fastmri/data/README.md``):

* ``kspace``: (S, C, H, W) complex64: slices, coils, readout (H, 640 for the brain: 2x
  oversampled), phase encoding (W, ~320, varies per file). Test-set files hold it undersampled.
* ``reconstruction_rss``: (S, h, w) float32, (S, 320, 320) for the brain: root sum of squares of
  the fully sampled coil images, centre-cropped to the recon matrix. Absent in test-set files.
* ``mask``: (W,) the sampled phase-encoding columns; test-set files only.
* ``ismrmrd_header``: ISMRMRD XML (bytes), namespace :data:`ISMRMRD_NAMESPACE`; see
  :class:`FastMRIHeader`.
* attributes ``acquisition`` (``AXT1``, ``AXT1PRE``, ``AXT1POST``, ``AXT2``, ``AXFLAIR`` for the
  brain), ``patient_id``; training and validation files also ``max`` and ``norm`` (of the
  volume's ``reconstruction_rss``).

The image of k-space is fastMRI's ``ifft2c`` (``fftshift(ifft2(ifftshift(k), norm="ortho"))`` over
(H, W)), which is this package's :func:`ssimrecon.kspace.fft.ifft2c`. The readout's 2x
oversampling is removed in image space by the centre crop to the recon matrix (rows: H -> recon x,
columns: W -> recon y), as fastMRI's transforms do. Values are in the scanner's units (k-space
~1e-5..1e-3; RSS images ~1e-5..1e-4), not normalised.

A user-facing problem (missing dataset, wrong shape or dtype, unreadable header) raises
:class:`~ssimrecon.errors.FastMRIError` whose one-line message names the file and the key.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ssimrecon.data.ids import safe_id
from ssimrecon.errors import FastMRIError
from ssimrecon.kspace.fft import ifft2c

#: the XML namespace of the ISMRMRD header (fastMRI's ``et_query`` default)
ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"
KSPACE = "kspace"
RSS = "reconstruction_rss"
HEADER = "ismrmrd_header"
MASK = "mask"
#: the brain set's acquisitions (``acquisition`` attribute; fastmri/evaluate.py's choices)
BRAIN_ACQUISITIONS = ("AXT1", "AXT1PRE", "AXT1POST", "AXT2", "AXFLAIR")
#: the T1-weighted ones (pre- and post-contrast included)
T1_ACQUISITIONS = ("AXT1", "AXT1PRE", "AXT1POST")

_ENCODED = ("encoding", "encodedSpace")
_RECON = ("encoding", "reconSpace")
_LIMITS = ("encoding", "encodingLimits", "kspace_encoding_step_1")


@dataclasses.dataclass(frozen=True)
class FastMRIHeader:
    """The fields of an ISMRMRD header that fastMRI reads, and the field of view.

    ``encoded_matrix`` / ``recon_matrix``: (x, y, z) samples of ``encoding/encodedSpace`` /
    ``encoding/reconSpace`` ``matrixSize`` (x: readout = k-space H, y: phase encoding = k-space W);
    ``*_fov_mm``: their ``fieldOfView_mm`` (x, y, z) in mm, None when absent; ``limits_center`` /
    ``limits_maximum``: ``encoding/encodingLimits/kspace_encoding_step_1`` ``center`` and
    ``maximum`` as stored (fastMRI adds 1 to the maximum).
    """

    encoded_matrix: tuple[int, int, int]
    recon_matrix: tuple[int, int, int]
    encoded_fov_mm: tuple[float, float, float] | None
    recon_fov_mm: tuple[float, float, float] | None
    limits_center: int
    limits_maximum: int

    @property
    def padding_left(self) -> int:
        """First sampled phase-encoding column, fastMRI's ``enc_size[1] // 2 - center``."""
        return self.encoded_matrix[1] // 2 - self.limits_center

    @property
    def padding_right(self) -> int:
        """One past the last sampled column: ``padding_left + maximum + 1``. fastMRI zeroes mask
        columns ``[:padding_left]`` and ``[padding_right:]`` (zero-padded k-space)."""
        return self.padding_left + self.limits_maximum + 1

    @property
    def recon_size(self) -> tuple[int, int]:
        """(rows, columns) of the recon matrix, fastMRI's ``(recon_size[0], recon_size[1])``."""
        return self.recon_matrix[0], self.recon_matrix[1]

    @property
    def recon_pixel_spacing_mm(self) -> tuple[float, float] | None:
        """mm per pixel of the recon matrix's (rows, columns); None without a recon FOV."""
        if self.recon_fov_mm is None:
            return None
        return (
            self.recon_fov_mm[0] / self.recon_matrix[0],
            self.recon_fov_mm[1] / self.recon_matrix[1],
        )


def _find(root: ElementTree.Element, path: Sequence[str]) -> ElementTree.Element | None:
    """fastMRI's ``et_query``: nested descendant search ``.//ns:a//ns:b...``, first match."""
    query = "." + "".join(f"//ismrmrd:{part}" for part in path)
    return root.find(query, {"ismrmrd": ISMRMRD_NAMESPACE})


def _text(root: ElementTree.Element, path: Sequence[str], where: str) -> str:
    element = _find(root, path)
    if element is None or element.text is None or not element.text.strip():
        raise FastMRIError(f"{where} lacks <{'/'.join(path)}> (namespace {ISMRMRD_NAMESPACE})")
    return element.text.strip()


def _number(root: ElementTree.Element, path: Sequence[str], where: str, kind: type) -> Any:
    text = _text(root, path, where)
    try:
        return kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise FastMRIError(f"{where}: <{'/'.join(path)}> is {text!r}, not {expected}") from None


def _triple(root: ElementTree.Element, path: Sequence[str], where: str, kind: type) -> tuple:
    return tuple(_number(root, (*path, axis), where, kind) for axis in ("x", "y", "z"))


def _fov(root: ElementTree.Element, space: Sequence[str], where: str) -> tuple | None:
    if _find(root, (*space, "fieldOfView_mm")) is None:
        return None
    return _triple(root, (*space, "fieldOfView_mm"), where, float)


def parse_ismrmrd_header(xml: bytes | str, *, where: str = "ISMRMRD header") -> FastMRIHeader:
    """The :class:`FastMRIHeader` of ISMRMRD XML ``xml``; elements are found as fastMRI's
    ``et_query`` finds them (first descendant match in :data:`ISMRMRD_NAMESPACE`).

    FastMRIError starting with ``where`` (e.g. ``"<file>: dataset 'ismrmrd_header'"``) for XML that
    does not parse, a missing element or a non-numeric value."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise FastMRIError(f"{where} is not valid XML ({exc})") from None
    return FastMRIHeader(
        encoded_matrix=_triple(root, (*_ENCODED, "matrixSize"), where, int),
        recon_matrix=_triple(root, (*_RECON, "matrixSize"), where, int),
        encoded_fov_mm=_fov(root, _ENCODED, where),
        recon_fov_mm=_fov(root, _RECON, where),
        limits_center=_number(root, (*_LIMITS, "center"), where, int),
        limits_maximum=_number(root, (*_LIMITS, "maximum"), where, int),
    )


def center_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The centre ``size`` (h, w) of ``image`` (..., H, W), fastMRI's ``center_crop`` rule: rows
    from ``(H - h) // 2``, columns from ``(W - w) // 2`` (a view). ValueError when it does not
    fit."""
    h, w = size
    rows, cols = image.shape[-2:]
    if not (0 < h <= rows and 0 < w <= cols):
        raise ValueError(f"cannot crop {(rows, cols)} to {size}")
    top, left = (rows - h) // 2, (cols - w) // 2
    return image[..., top : top + h, left : left + w]


def fastmri_subject(path: Path | str) -> str:
    """A file's subject id: its name's stem made wildcard-safe (``file_brain_AXT1_201_6002717``)."""
    return safe_id(Path(path).stem)


def _attribute(value: Any) -> Any:
    """An HDF5 attribute as a plain value: bytes decoded, numpy scalars unwrapped."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", "replace")
    return value.item() if isinstance(value, np.generic) else value


class FastMRIVolume:
    """One fastMRI multi-coil file, open for reading by slice (``with open_fastmri(p) as v:``).

    Validated on opening: ``kspace`` (S, C, H, W) complex64, ``ismrmrd_header`` parses,
    ``reconstruction_rss`` (when present) (S, h, w) float32, ``mask`` (when present) (W,).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise FastMRIError(f"{self.path}: not a readable HDF5 file ({exc})") from None
        try:
            self._kspace = self._dataset(KSPACE, "(slices, coils, H, W) complex64")
            self._check_kspace()
            self.header = self._read_header()
            self._check_crop()
            self._rss = self._optional_rss()
            self.mask = self._read_mask()
            self.attrs = {key: _attribute(v) for key, v in self._file.attrs.items()}
        except BaseException:
            self._file.close()
            raise

    def _dataset(self, key: str, expected: str) -> h5py.Dataset:
        item = self._file.get(key)
        if not isinstance(item, h5py.Dataset):
            raise FastMRIError(f"{self.path}: no dataset {key!r} ({expected})")
        return item

    def _check_kspace(self) -> None:
        shape, dtype = self._kspace.shape, self._kspace.dtype
        if len(shape) != 4 or 0 in shape:
            raise FastMRIError(
                f"{self.path}: dataset 'kspace' has shape {shape}, expected (slices, coils, H, W) "
                "(multi-coil; single-coil files are (slices, H, W))"
            )
        if dtype != np.complex64:
            raise FastMRIError(f"{self.path}: dataset 'kspace' has dtype {dtype}, not complex64")

    def _read_header(self) -> FastMRIHeader:
        where = f"{self.path}: dataset {HEADER!r}"
        value = self._dataset(HEADER, "ISMRMRD XML")[()]
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value.item()
        if not isinstance(value, bytes | str):
            raise FastMRIError(f"{where} is not a string ({type(value).__name__})")
        return parse_ismrmrd_header(value, where=where)

    def _check_crop(self) -> None:
        rows, cols = self.kspace_shape[2:]
        if self.crop_size[0] > rows or min(self.crop_size) < 1:
            raise FastMRIError(
                f"{self.path}: dataset {HEADER!r} recon matrix {self.header.recon_size} does not "
                f"fit k-space of {rows} x {cols}"
            )

    def _optional_rss(self) -> h5py.Dataset | None:
        if RSS not in self._file:
            return None
        rss = self._dataset(RSS, "(slices, h, w) float32")
        if rss.ndim != 3 or rss.shape[0] != self.n_slices or rss.dtype != np.float32:
            raise FastMRIError(
                f"{self.path}: dataset {RSS!r} is {rss.dtype} {rss.shape}, expected float32 "
                f"({self.n_slices}, h, w)"
            )
        return rss

    def _read_mask(self) -> np.ndarray | None:
        if MASK not in self._file:
            return None
        mask = np.asarray(self._dataset(MASK, "(W,)")[()])
        width = self.kspace_shape[3]
        if mask.shape != (width,):
            raise FastMRIError(
                f"{self.path}: dataset 'mask' has shape {mask.shape}, not ({width},)"
            )
        return mask != 0

    def __enter__(self) -> FastMRIVolume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HDF5 file (reading a slice after it fails)."""
        self._file.close()

    def __repr__(self) -> str:
        return f"FastMRIVolume({str(self.path)!r}, kspace={self.kspace_shape}, {self.acquisition})"

    @property
    def subject(self) -> str:
        """The subject id of :func:`fastmri_subject`."""
        return fastmri_subject(self.path)

    @property
    def kspace_shape(self) -> tuple[int, int, int, int]:
        """(S, C, H, W): slices, coils, readout (oversampled), phase encoding."""
        return tuple(self._kspace.shape)

    @property
    def n_slices(self) -> int:
        return self.kspace_shape[0]

    @property
    def n_coils(self) -> int:
        return self.kspace_shape[1]

    @property
    def acquisition(self) -> str | None:
        """The ``acquisition`` attribute (``AXT1``, ...), None when the file has none."""
        value = self.attrs.get("acquisition")
        return None if value is None else str(value)

    @property
    def has_rss(self) -> bool:
        """Whether the file holds ``reconstruction_rss`` (test-set files do not)."""
        return self._rss is not None

    @property
    def rss_shape(self) -> tuple[int, int, int] | None:
        """(S, h, w) of ``reconstruction_rss``, None without it."""
        return None if self._rss is None else tuple(self._rss.shape)

    @property
    def crop_size(self) -> tuple[int, int]:
        """(h, w) of :meth:`image_rss`: the header's recon size, narrowed as fastMRI's
        ``UnetDataTransform`` does ("FLAIR 203") to (W, W) when k-space has fewer than w columns.
        """
        h, w = self.header.recon_size
        width = self.kspace_shape[3]
        return (width, width) if width < w else (h, w)

    def _index(self, i: int) -> int:
        if not 0 <= i < self.n_slices:
            raise IndexError(f"{self.path}: slice {i} outside 0..{self.n_slices - 1}")
        return i

    def _read(self, dataset: h5py.Dataset, i: int) -> np.ndarray:
        try:
            return dataset[self._index(i)]
        except (OSError, ValueError) as exc:  # damaged chunk, closed file
            key = dataset.name.lstrip("/")
            raise FastMRIError(f"{self.path}: cannot read {key!r} slice {i} ({exc})") from None

    def kspace_slice(self, i: int) -> np.ndarray:
        """k-space of slice ``i``: (C, H, W) complex64 as stored (undersampled in test files)."""
        return self._read(self._kspace, i)

    def rss_slice(self, i: int) -> np.ndarray | None:
        """``reconstruction_rss`` of slice ``i``: (h, w) float32, (320, 320) for the brain; None
        when the file has none."""
        return None if self._rss is None else self._read(self._rss, i)

    def image_rss(self, i: int) -> np.ndarray:
        """RSS image of slice ``i``: ``sqrt(sum_c |ifft2c(kspace[c])|^2)`` centre-cropped to
        :attr:`crop_size`, (h, w) float32 - what ``reconstruction_rss`` holds for fully sampled
        files; the zero-filled RSS for undersampled (test) ones."""
        coils = center_crop(ifft2c(self.kspace_slice(i), overwrite_x=True), self.crop_size)
        return np.sqrt(np.sum(coils.real**2 + coils.imag**2, axis=0)).astype(np.float32)

    def image_rss_volume(self) -> np.ndarray:
        """:meth:`image_rss` of every slice: (S, h, w) float32."""
        return np.stack([self.image_rss(i) for i in range(self.n_slices)])


def open_fastmri(path: Path | str) -> FastMRIVolume:
    """Open and validate one fastMRI multi-coil file; close it with ``with`` or ``.close()``.

    FastMRIError naming the file and key for a missing ``kspace``/``ismrmrd_header``, a ``kspace``
    that is not (S, C, H, W) complex64, XML that does not parse or lacks a field, a
    ``reconstruction_rss`` that is not (S, h, w) float32 or a ``mask`` that is not (W,)."""
    return FastMRIVolume(path)


def list_fastmri(directory: Path | str, acquisitions: Sequence[str] | None = None) -> list[Path]:
    """The ``*.h5`` files directly in ``directory`` (hidden ones skipped), sorted by name, each
    opened and validated, kept when its ``acquisition`` attribute is in ``acquisitions`` (all
    when None). Subject ids: :func:`fastmri_subject` (unique: the names share a folder).

    FastMRIError naming the folder when it is not one or no file is kept, naming a file that is
    invalid or (when filtering) has no ``acquisition`` attribute."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FastMRIError(f"fastMRI source {directory} is not a folder")
    wanted = None if acquisitions is None else set(acquisitions)
    kept = []
    for path in sorted(p for p in directory.glob("*.h5") if not p.name.startswith(".")):
        with open_fastmri(path) as volume:
            acquisition = volume.acquisition
        if wanted is not None and acquisition is None:
            raise FastMRIError(f"{path}: no attribute 'acquisition' to select by")
        if wanted is None or acquisition in wanted:
            kept.append(path)
    if not kept:
        which = "" if wanted is None else f" with acquisition in {sorted(wanted)}"
        raise FastMRIError(f"no fastMRI *.h5 file{which} in {directory}")
    return kept
