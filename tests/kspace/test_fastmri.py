"""The fastMRI multi-coil reader: header fields and padding as fastMRI computes them, RSS images
equal to the files' ``reconstruction_rss``, acquisition filtering, one-line errors naming file and
key, test-set files (mask, no RSS), and fastMRI's centred FFT equal to the package's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ssimrecon.errors import FastMRIError
from ssimrecon.kspace.fastmri import (
    T1_ACQUISITIONS,
    center_crop,
    fastmri_subject,
    list_fastmri,
    open_fastmri,
    parse_ismrmrd_header,
)
from ssimrecon.kspace.fft import ifft2c, ifft2c_torch
from tests.helpers.fastmri import fastmri_ifft2c, ismrmrd_xml, write_fastmri_file


def test_header_fields_and_padding_are_those_fastmri_computes() -> None:
    """fastMRI: padding_left = enc_y // 2 - center, padding_right = padding_left + maximum + 1
    (here 368 // 2 - 173 = 11 and 11 + 330 + 1 = 342); the step-0 limits and the parallel-imaging
    ``kspace_encoding_step_1`` in the XML are not the ones read."""
    xml = ismrmrd_xml((640, 368, 1), (320, 320, 1), (173, 330))
    for text in (xml, xml.decode()):
        header = parse_ismrmrd_header(text)
        assert header.encoded_matrix == (640, 368, 1)
        assert header.recon_matrix == (320, 320, 1)
        assert header.encoded_fov_mm == (440.0, 220.0, 5.0)
        assert header.recon_fov_mm == (220.0, 220.0, 5.0)
        assert (header.limits_center, header.limits_maximum) == (173, 330)
        assert (header.padding_left, header.padding_right) == (11, 342)
        assert header.recon_size == (320, 320)
        assert header.recon_pixel_spacing_mm == (220 / 320, 220 / 320)
    bare = parse_ismrmrd_header(
        ismrmrd_xml(
            (640, 320, 1), (320, 320, 1), (160, 319), encoded_fov_mm=None, recon_fov_mm=None
        )
    )
    assert (bare.encoded_fov_mm, bare.recon_fov_mm, bare.recon_pixel_spacing_mm) == (None,) * 3
    assert (bare.padding_left, bare.padding_right) == (0, 320)


@pytest.mark.parametrize(
    "xml, message",
    [
        (b"<ismrmrdHeader><encoding>", "is not valid XML"),
        (  # no namespace: fastMRI's et_query finds nothing either
            ismrmrd_xml((64, 32, 1), (32, 32, 1), (16, 31)).replace(b' xmlns="', b' xmlns:n="'),
            "lacks <encoding/encodedSpace/matrixSize/x>",
        ),
        (
            ismrmrd_xml((64, 32, 1), (32, 32, 1), (16, 31)).replace(b"<center>16<", b"<center>a<"),
            "<encoding/encodingLimits/kspace_encoding_step_1/center> is 'a', not an integer",
        ),
    ],
)
def test_a_bad_header_is_a_one_line_error_naming_the_field(xml: bytes, message: str) -> None:
    with pytest.raises(FastMRIError) as caught:
        parse_ismrmrd_header(xml, where="f.h5: dataset 'ismrmrd_header'")
    assert str(caught.value).startswith("f.h5: dataset 'ismrmrd_header'")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_image_rss_equals_reconstruction_rss(tmp_path: Path) -> None:
    path = tmp_path / "file_brain_AXT1_201_6002717.h5"
    written = write_fastmri_file(path, n_slices=4, n_coils=4, shape=(64, 32), recon=(32, 32))
    with open_fastmri(path) as volume:
        assert volume.kspace_shape == (4, 4, 64, 32)
        assert (volume.n_slices, volume.n_coils, volume.acquisition) == (4, 4, "AXT1")
        assert volume.has_rss and volume.rss_shape == (4, 32, 32) and volume.mask is None
        assert volume.subject == "file_brain_AXT1_201_6002717"
        assert volume.header.encoded_matrix == (64, 32, 1)
        assert volume.crop_size == volume.header.recon_size == (32, 32)
        assert volume.attrs["max"] == pytest.approx(float(written["rss"].max()))
        assert isinstance(volume.attrs["patient_id"], str)
        for i in range(volume.n_slices):
            k = volume.kspace_slice(i)
            assert k.dtype == np.complex64 and k.shape == (4, 64, 32)
            np.testing.assert_array_equal(k, written["kspace"][i])
            target = volume.rss_slice(i)
            assert target.dtype == np.float32 and target.shape == (32, 32)
            image = volume.image_rss(i)
            assert image.dtype == np.float32 and image.shape == (32, 32)
            np.testing.assert_allclose(image, target, rtol=1e-5, atol=1e-6 * target.max())
        volume_rss = volume.image_rss_volume()
        assert volume_rss.shape == (4, 32, 32)
        np.testing.assert_allclose(volume_rss, written["rss"], rtol=1e-5, atol=1e-6)
        assert volume_rss.max() > 0.1  # the head is there, not an empty crop
        with pytest.raises(IndexError):
            volume.kspace_slice(4)


def test_acquisition_filter_keeps_only_t1_files(tmp_path: Path) -> None:
    names = {
        "file_brain_AXT2_200_1.h5": "AXT2",
        "file_brain_AXT1POST_201_2.h5": "AXT1POST",
        "file_brain_AXT1_202_3.h5": "AXT1",
        "file_brain_AXFLAIR_203_4.h5": "AXFLAIR",
        "file_brain_AXT1PRE_204_5.h5": "AXT1PRE",
    }
    for seed, (name, acquisition) in enumerate(names.items()):
        write_fastmri_file(
            tmp_path / name, n_slices=1, n_coils=2, acquisition=acquisition, seed=seed
        )
    (tmp_path / "notes.txt").write_text("not a volume")
    t1 = list_fastmri(tmp_path, T1_ACQUISITIONS)
    assert [p.name for p in t1] == [
        "file_brain_AXT1POST_201_2.h5",
        "file_brain_AXT1PRE_204_5.h5",
        "file_brain_AXT1_202_3.h5",
    ]
    assert [fastmri_subject(p) for p in t1] == [p.stem for p in t1]
    assert len(list_fastmri(tmp_path)) == 5
    assert [p.name for p in list_fastmri(tmp_path, ["AXT2"])] == ["file_brain_AXT2_200_1.h5"]
    only_t2 = tmp_path / "t2"
    only_t2.mkdir()
    write_fastmri_file(only_t2 / "file_brain_AXT2_1.h5", n_slices=1, n_coils=2, acquisition="AXT2")
    with pytest.raises(
        FastMRIError, match=r"no fastMRI \*\.h5 file with acquisition in \['AXT1'\]"
    ):
        list_fastmri(only_t2, ["AXT1"])
    with pytest.raises(FastMRIError, match="is not a folder"):
        list_fastmri(tmp_path / "missing")


def _delete(key: str) -> Callable[[h5py.File], None]:
    def mutate(hf: h5py.File) -> None:
        del hf[key]

    return mutate


def _replace(key: str, value: object) -> Callable[[h5py.File], None]:
    def mutate(hf: h5py.File) -> None:
        del hf[key]
        hf.create_dataset(key, data=value)

    return mutate


KSPACE_3D = np.zeros((2, 64, 32), np.complex64)
HEADER_CUT = ismrmrd_xml((64, 32, 1), (32, 32, 1), (16, 31))[:200]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_delete("kspace"), "no dataset 'kspace' ((slices, coils, H, W) complex64)"),
        (_replace("kspace", KSPACE_3D), "dataset 'kspace' has shape (2, 64, 32), expected"),
        (_replace("kspace", np.zeros((2, 2, 64, 32))), "'kspace' has dtype float64, not complex64"),
        (_delete("ismrmrd_header"), "no dataset 'ismrmrd_header' (ISMRMRD XML)"),
        (_replace("ismrmrd_header", HEADER_CUT), "dataset 'ismrmrd_header' is not valid XML ("),
        (_replace("ismrmrd_header", np.zeros(3)), "dataset 'ismrmrd_header' is not a string"),
        (_replace("reconstruction_rss", np.zeros((2, 32, 32))), "'reconstruction_rss' is float64"),
        (_replace("mask", np.ones(31, bool)), "dataset 'mask' has shape (31,), not (32,)"),
    ],
)
def test_a_damaged_file_is_a_one_line_error_naming_file_and_key(
    tmp_path: Path, mutate: Callable[[h5py.File], None], message: str
) -> None:
    path = tmp_path / "file_brain_AXT1_1.h5"
    write_fastmri_file(path, n_slices=2, n_coils=2, with_mask=True)
    with h5py.File(path, "a") as hf:
        mutate(hf)
    with pytest.raises(FastMRIError) as caught:
        open_fastmri(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text
    # the folder listing reports the same file
    with pytest.raises(FastMRIError, match=str(path)):
        list_fastmri(tmp_path)


def test_not_an_hdf5_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "file_brain_AXT1_1.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(FastMRIError, match=f"^{path}: not a readable HDF5 file"):
        open_fastmri(path)


def test_a_test_set_file_without_rss_still_reads(tmp_path: Path) -> None:
    """Test-set layout: undersampled k-space, ``mask`` (W,), no ``reconstruction_rss``, no max."""
    path = tmp_path / "file_brain_AXT1PRE_1.h5"
    written = write_fastmri_file(
        path, n_slices=3, n_coils=2, acquisition="AXT1PRE", with_rss=False, with_mask=True
    )
    with open_fastmri(path) as volume:
        assert not volume.has_rss and volume.rss_shape is None and volume.rss_slice(0) is None
        assert "max" not in volume.attrs and volume.acquisition == "AXT1PRE"
        assert volume.mask.dtype == bool
        np.testing.assert_array_equal(volume.mask, written["mask"])
        assert 0 < volume.mask.sum() < 32
        k = volume.kspace_slice(2)
        assert not np.any(k[..., ~volume.mask])
        image = volume.image_rss(2)  # the zero-filled RSS
        assert image.shape == (32, 32) and np.isfinite(image).all() and image.max() > 0


def test_narrow_kspace_is_cropped_square_as_fastmri_does(tmp_path: Path) -> None:
    """fastMRI's UnetDataTransform ("FLAIR 203"): fewer columns than the recon width -> (W, W)."""
    path = tmp_path / "file_brain_AXFLAIR_1.h5"
    write_fastmri_file(path, n_slices=1, n_coils=2, shape=(64, 24), recon=(32, 32), with_rss=False)
    with open_fastmri(path) as volume:
        assert volume.crop_size == (24, 24)
        assert volume.image_rss(0).shape == (24, 24)


def test_center_crop_follows_fastmri() -> None:
    image = np.arange(7 * 6).reshape(7, 6)
    np.testing.assert_array_equal(center_crop(image, (4, 3)), image[1:5, 1:4])
    assert center_crop(np.zeros((2, 640, 320)), (320, 320)).shape == (2, 320, 320)
    with pytest.raises(ValueError):
        center_crop(image, (8, 2))


def _fastmri_roll(x: torch.Tensor, shifts: list[int], dims: list[int]) -> torch.Tensor:
    """fastMRI's ``roll`` (fastmri/fftc.py): narrow and concatenate, one dim at a time."""
    for shift, dim in zip(shifts, dims):
        shift = shift % x.size(dim)
        if shift:
            left = x.narrow(dim, 0, x.size(dim) - shift)
            right = x.narrow(dim, x.size(dim) - shift, shift)
            x = torch.cat((right, left), dim=dim)
    return x


def _fastmri_ifft2c_new(data: torch.Tensor) -> torch.Tensor:
    """fastMRI's ``ifft2c_new`` on its real view (..., H, W, 2): ifftshift by (n + 1) // 2,
    ``ifftn`` over (-2, -1) of the complex view with norm "ortho", fftshift by n // 2."""
    dims = [-3, -2]
    data = _fastmri_roll(data, [(data.shape[d] + 1) // 2 for d in dims], dims)
    data = torch.view_as_real(
        torch.fft.ifftn(torch.view_as_complex(data), dim=(-2, -1), norm="ortho")
    )
    return _fastmri_roll(data, [data.shape[d] // 2 for d in dims], dims)


@pytest.mark.parametrize("shape", [(2, 3, 16, 12), (1, 2, 15, 9), (4, 640 // 20, 320 // 20)])
def test_fastmri_ifft2c_is_the_package_ifft2c(shape: tuple[int, ...]) -> None:
    """Same centred orthonormal convention on the last two axes, even and odd sizes."""
    rng = np.random.default_rng(0)
    k = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    reference = fastmri_ifft2c(k)  # numpy: fftshift(ifft2(ifftshift(k), norm="ortho"))
    np.testing.assert_allclose(ifft2c(k), reference, rtol=1e-5, atol=1e-5)
    as_fastmri = _fastmri_ifft2c_new(torch.view_as_real(torch.from_numpy(k.copy())))
    np.testing.assert_allclose(torch.view_as_complex(as_fastmri).numpy(), reference, atol=1e-5)
    np.testing.assert_allclose(ifft2c_torch(torch.from_numpy(k)).numpy(), reference, atol=1e-5)
