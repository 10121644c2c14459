"""Every landing format reads to the same canonical volume; every bad file is refused clearly."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from layer_platform.errors import VolumeReadError
from layer_platform.io import (
    SUPPORTED_EXTENSIONS,
    Volume,
    read_volume,
    volume_extension,
    write_volume,
)
from layer_platform.io.dicom import write_dicom

SPACING = (0.3, 0.2, 0.75)  # lateral, depth, sweep: all different, so a swap shows


def _phantom() -> np.ndarray:
    """Shape (5, 7, 3) whose value 100*i + 10*j + k names its own canonical index."""
    i, j, k = np.meshgrid(np.arange(5), np.arange(7), np.arange(3), indexing="ij")
    return (100 * i + 10 * j + k).astype(np.uint16)


PHANTOM = _phantom()


def _write_nifti(path: Path, array: np.ndarray, zooms: tuple[float, ...]) -> Path:
    """A NIfTI written by nibabel alone (not by write_volume), for independent checks."""
    image = nib.Nifti1Image(array, affine=np.eye(4))
    image.header.set_zooms(zooms)
    nib.save(image, path)
    return path


def _truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_every_format_reads_the_same_canonical_phantom(tmp_path: Path, ext: str) -> None:
    path = write_volume(tmp_path / f"bmode.{ext}", Volume(PHANTOM, SPACING))
    volume = read_volume(path)
    assert volume.shape == (5, 7, 3)
    assert volume.array[4, 6, 2] == 462 and volume.array[1, 2, 0] == 120
    np.testing.assert_array_equal(volume.array, PHANTOM)
    assert volume.array.dtype == np.uint16
    assert volume.spacing == pytest.approx(SPACING)
    assert volume.metadata["format"] == ext
    assert volume.metadata["frames"] == 3


def test_simpleitk_and_nibabel_agree_on_a_nifti(tmp_path: Path) -> None:
    path = write_volume(tmp_path / "bmode.nii.gz", Volume(PHANTOM, SPACING))
    itk = sitk.ReadImage(str(path))
    from_itk = sitk.GetArrayFromImage(itk)
    assert from_itk.shape == (3, 7, 5)  # SimpleITK is (k, j, i)
    from_nibabel = np.asanyarray(nib.load(path).dataobj)
    np.testing.assert_array_equal(from_itk.transpose(2, 1, 0), from_nibabel)
    np.testing.assert_array_equal(read_volume(path).array, from_nibabel)
    assert itk.GetSpacing() == pytest.approx(nib.load(path).header.get_zooms())


def test_a_metaimage_written_by_simpleitk_reads_in_index_order(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(PHANTOM.transpose(2, 1, 0).copy())
    image.SetSpacing(SPACING)
    sitk.WriteImage(image, str(tmp_path / "bmode.mha"))
    volume = read_volume(tmp_path / "bmode.mha")
    np.testing.assert_array_equal(volume.array, PHANTOM)
    assert volume.spacing == pytest.approx(SPACING)


@pytest.mark.parametrize("order", ["LSD", "DLS", "SDL"])
def test_axis_order_maps_file_axes_to_canonical(tmp_path: Path, order: str) -> None:
    axes = ["LDS".index(letter) for letter in order]  # canonical axis held by file axis i, j, k
    path = _write_nifti(
        tmp_path / "bmode.nii", PHANTOM.transpose(axes), tuple(SPACING[a] for a in axes)
    )
    assert read_volume(path).shape != PHANTOM.shape
    volume = read_volume(path, axis_order=order.lower())
    np.testing.assert_array_equal(volume.array, PHANTOM)
    assert volume.spacing == pytest.approx(SPACING)


@pytest.mark.parametrize("order", ["LDD", "LD", "XYZ", "LDSS"])
def test_a_malformed_axis_order_is_a_caller_error(tmp_path: Path, order: str) -> None:
    path = write_volume(tmp_path / "bmode.nii", Volume(PHANTOM, SPACING))
    with pytest.raises(ValueError, match="axis_order"):
        read_volume(path, axis_order=order)


def test_spacing_override_replaces_the_header(tmp_path: Path) -> None:
    path = write_volume(tmp_path / "bmode.nrrd", Volume(PHANTOM, SPACING))
    assert read_volume(path, spacing=(1.0, 2.0, 3.0)).spacing == (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="spacing"):
        read_volume(path, spacing=(1.0, 0.0, 3.0))


def test_missing_spacing_asks_for_spacing_mm(tmp_path: Path) -> None:
    path = tmp_path / "bmode.nrrd"
    nrrd.write(str(path), PHANTOM)  # no spacings, no space directions
    with pytest.raises(VolumeReadError, match="spacing_mm") as error:
        read_volume(path)
    assert "lateral/depth/sweep" in error.value.reason
    assert read_volume(path, spacing=SPACING).spacing == SPACING


def test_metaimage_without_element_spacing_is_not_taken_for_1mm(tmp_path: Path) -> None:
    path = tmp_path / "bmode.mha"
    header = "ObjectType = Image\nNDims = 3\nDimSize = 5 7 3\nElementType = MET_USHORT\n"
    path.write_bytes(f"{header}ElementDataFile = LOCAL\n".encode() + PHANTOM.T.tobytes())
    with pytest.raises(VolumeReadError, match="spacing_mm"):
        read_volume(path)
    np.testing.assert_array_equal(read_volume(path, spacing=SPACING).array, PHANTOM)


def test_a_2d_image_becomes_one_frame(tmp_path: Path) -> None:
    path = _write_nifti(tmp_path / "bmode.nii", PHANTOM[:, :, 0], SPACING[:2])
    volume = read_volume(path)
    assert volume.shape == (5, 7, 1)
    assert volume.metadata["frames"] == 1
    assert volume.spacing == pytest.approx((*SPACING[:2], 1.0))
    np.testing.assert_array_equal(volume.array[:, :, 0], PHANTOM[:, :, 0])


def test_a_trailing_singleton_fourth_axis_is_squeezed(tmp_path: Path) -> None:
    path = _write_nifti(tmp_path / "bmode.nii", PHANTOM[..., np.newaxis], (*SPACING, 1.0))
    np.testing.assert_array_equal(read_volume(path).array, PHANTOM)


def _vector_mha(path: Path, components: int) -> np.ndarray:
    """A 2D MetaImage with ``components`` values per pixel; returns them as (i, j, c)."""
    values = np.arange(5 * 7 * components, dtype=np.uint8).reshape(5, 7, components)
    values[..., :3] = values[..., :1]  # R = G = B, so a colour reading keeps the value
    image = sitk.GetImageFromArray(values.transpose(1, 0, 2).copy(), isVector=True)
    image.SetSpacing(SPACING[:2])
    sitk.WriteImage(image, str(path))
    return values


def test_a_2d_image_with_many_components_is_frames(tmp_path: Path) -> None:
    values = _vector_mha(tmp_path / "bmode.mha", components=6)
    volume = read_volume(tmp_path / "bmode.mha", spacing=SPACING)
    np.testing.assert_array_equal(volume.array, values)
    assert volume.metadata["frames"] == 6 and volume.metadata["colour"] is False


def test_a_2d_rgb_image_is_one_grey_frame(tmp_path: Path) -> None:
    values = _vector_mha(tmp_path / "bmode.mha", components=3)
    volume = read_volume(tmp_path / "bmode.mha")
    np.testing.assert_array_equal(volume.array[..., 0], values[..., 0])
    assert volume.shape == (5, 7, 1) and volume.metadata["colour"] is True


def test_two_component_pixels_are_refused(tmp_path: Path) -> None:
    _vector_mha(tmp_path / "bmode.mha", components=2)
    with pytest.raises(VolumeReadError, match="2 values per voxel"):
        read_volume(tmp_path / "bmode.mha")


def _three_component_nrrd(path: Path, kind: str) -> Path:
    """A 2D NRRD with its components first, as NRRD writes colour; R = G = B."""
    rgb = np.repeat(PHANTOM[np.newaxis, :, :, 0], 3, axis=0)
    directions = np.array([[np.nan, np.nan], [SPACING[0], 0.0], [0.0, SPACING[1]]])
    header = {
        "kinds": [kind, "domain", "domain"],
        "space dimension": 2,
        "space directions": directions,
    }
    nrrd.write(str(path), rgb, header)
    return path


def test_nrrd_colour_kind_is_grey(tmp_path: Path) -> None:
    volume = read_volume(_three_component_nrrd(tmp_path / "bmode.nrrd", "RGB-color"))
    np.testing.assert_array_equal(volume.array[..., 0], PHANTOM[..., 0])
    assert volume.spacing == pytest.approx((*SPACING[:2], 1.0))


def test_nrrd_vector_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VolumeReadError, match="'vector' values"):
        read_volume(_three_component_nrrd(tmp_path / "bmode.nrrd", "vector"))


def test_big_endian_samples_come_back_native(tmp_path: Path) -> None:
    path = tmp_path / "bmode.nrrd"
    nrrd.write(str(path), PHANTOM, {"endian": "big", "encoding": "raw", "spacings": SPACING})
    volume = read_volume(path)
    assert volume.array.dtype.isnative
    np.testing.assert_array_equal(volume.array, PHANTOM)


def test_nifti_scaling_is_applied_as_float32(tmp_path: Path) -> None:
    image = nib.Nifti1Image(PHANTOM, affine=np.diag([*SPACING, 1.0]))
    image.header.set_slope_inter(0.5, 10.0)
    nib.save(image, tmp_path / "swe.nii")
    volume = read_volume(tmp_path / "swe.nii")
    assert volume.array.dtype == np.float32
    np.testing.assert_allclose(volume.array, PHANTOM * 0.5 + 10.0)


def _four_d(path: Path) -> None:
    data = np.stack([PHANTOM, PHANTOM], axis=-1)
    if path.suffix == ".nii":
        _write_nifti(path, data, (*SPACING, 1.0))
    elif path.suffix == ".nrrd":
        nrrd.write(str(path), data, {"spacings": [*SPACING, 1.0]})
    else:
        image = sitk.GetImageFromArray(data.transpose(3, 2, 1, 0).copy())
        sitk.WriteImage(image, str(path))


@pytest.mark.parametrize("name", ["bmode.nii", "bmode.nrrd", "bmode.mha"])
def test_a_4d_image_is_refused(tmp_path: Path, name: str) -> None:
    _four_d(tmp_path / name)
    with pytest.raises(VolumeReadError, match="4D"):
        read_volume(tmp_path / name)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "bmode.nii.gz").touch()
    with pytest.raises(VolumeReadError, match="empty"):
        read_volume(tmp_path / "bmode.nii.gz")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VolumeReadError, match="does not exist"):
        read_volume(tmp_path / "bmode.mha")


@pytest.mark.parametrize("name", ["bmode.tif", "bmode.png", "bmode.nii.bz2", "bmode"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"\x00" * 64)
    with pytest.raises(VolumeReadError, match="not a landing format"):
        read_volume(tmp_path / name)


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_garbage_is_refused_as_damaged(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"bmode.{ext}"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(VolumeReadError, match="damaged"):
        read_volume(path)


def test_truncated_gzip_mid_stream(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 65535, size=(40, 30, 20), dtype=np.uint16)
    path = write_volume(tmp_path / "bmode.nii.gz", Volume(noise, SPACING))
    _truncate(path, 0.5)
    with pytest.raises(VolumeReadError, match="truncated"):
        read_volume(path)


def _raw_nrrd(path: Path) -> None:
    nrrd.write(str(path), PHANTOM, {"encoding": "raw", "spacings": list(SPACING)})


def _raw_mha(path: Path) -> None:
    image = sitk.GetImageFromArray(PHANTOM.transpose(2, 1, 0).copy())
    image.SetSpacing(SPACING)
    sitk.WriteImage(image, str(path), useCompression=False)


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("bmode.nii", lambda p: write_volume(p, Volume(PHANTOM, SPACING))),
        ("bmode.nrrd", _raw_nrrd),
        ("bmode.mha", _raw_mha),
        ("bmode.dcm", lambda p: write_dicom(p, PHANTOM, SPACING)),
    ],
)
def test_truncated_raw_data_is_named_truncated(
    tmp_path: Path, name: str, write: Callable[[Path], object]
) -> None:
    path = tmp_path / name
    write(path)
    path.write_bytes(path.read_bytes()[:-50])  # the tail of the voxel data
    with pytest.raises(VolumeReadError, match="truncated"):
        read_volume(path)


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_any_truncation_is_reported_as_truncated(tmp_path: Path, ext: str, keep: float) -> None:
    noise = np.random.default_rng(1).integers(0, 255, size=(20, 16, 6), dtype=np.uint16)
    path = write_volume(tmp_path / f"bmode.{ext}", Volume(noise, SPACING))
    data_file = next((p for p in tmp_path.iterdir() if p.suffix in (".gz", ".zraw")), path)
    _truncate(data_file, keep)  # the detached data file of .mhd/.nhdr, else the file itself
    with pytest.raises(VolumeReadError, match="truncated"):
        read_volume(path)


def _huge_nifti_bytes() -> bytes:
    """A NIfTI-1 header declaring 30000³ voxels (25 TiB), followed by 1 kB of data."""
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.uint8)
    header.set_zooms((1.0, 1.0, 1.0))
    return header.binaryblock + b"\x00" * 4 + b"\x01" * 1000


def _huge_nrrd(path: Path) -> None:
    path.write_bytes(
        b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 40000 40000 40000\nencoding: gzip\n"
        b"spacings: 1 1 1\n\n" + gzip.compress(b"\x00" * 1000)
    )


def _huge_mha(path: Path) -> None:
    path.write_bytes(
        b"ObjectType = Image\nNDims = 3\nDimSize = 40000 40000 40000\nElementType = MET_UCHAR\n"
        b"CompressedData = True\nElementSpacing = 1 1 1\nElementDataFile = LOCAL\n" + b"\x00" * 99
    )


def _huge_dicom(path: Path) -> None:
    write_dicom(path, PHANTOM, SPACING)
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 60000, 60000, 5000
    ds.save_as(path)


@pytest.mark.parametrize(
    ("name", "craft"),
    [
        ("bmode.nii", lambda p: p.write_bytes(_huge_nifti_bytes())),
        ("bmode.nii.gz", lambda p: p.write_bytes(gzip.compress(_huge_nifti_bytes()))),
        ("bmode.nrrd", _huge_nrrd),
        ("bmode.mha", _huge_mha),
        ("bmode.dcm", _huge_dicom),
    ],
)
def test_an_enormous_declared_size_is_refused_before_allocating(
    tmp_path: Path, name: str, craft: Callable[[Path], object]
) -> None:
    """The refusal names the declared size. That nothing big was allocated first is measured
    where the C libraries' allocations show, by peak RSS in a child process
    (``ingestion/test_bad_input_matrix.py::test_bounded_cases_stay_under_the_rss_bound_in_a_child``):
    ``tracemalloc`` here could not see what SimpleITK allocates."""
    path = tmp_path / name
    craft(path)
    with pytest.raises(VolumeReadError, match="GiB"):
        read_volume(path)


def test_volume_extension() -> None:
    assert volume_extension(Path("x/bmode.nii.gz")) == "nii.gz"
    assert volume_extension("LAYERS.NII") == "nii"
    assert volume_extension("swe.mhd") == "mhd"
    assert volume_extension("bmode.raw.gz") is None
    assert volume_extension("bmode.tif") is None


class TestRealFiles:
    """Files written by other software (../shared/data/real): what the contract must survive."""

    def test_spine_phantom_metaimage(self, real_data: Path) -> None:
        path = real_data / "plus" / "SpinePhantomFreehandReconstructed.mha"
        volume = read_volume(path)
        assert volume.shape == (147, 106, 104)
        assert volume.spacing == (0.5, 0.5, 0.5)
        assert volume.array.dtype == np.uint8
        itk = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        np.testing.assert_array_equal(volume.array, itk.transpose(2, 1, 0))

    def test_prostate_detached_header(self, real_data: Path) -> None:
        volume = read_volume(real_data / "plus" / "Prostate10_video.igs.mhd")
        assert volume.shape == (640, 480, 10)
        assert volume.spacing == pytest.approx((0.3, 0.3, 1.0))
        assert volume.array.any()

    def test_nwire_nrrd_frames_are_the_sweep_not_colour(self, real_data: Path) -> None:
        path = real_data / "plus" / "NwirePhantomFreehand.igs.nrrd"
        with pytest.raises(VolumeReadError, match="sweep"):
            read_volume(path)  # the list axis has no spacing: ask for it, do not invent it
        volume = read_volume(path, spacing=(0.2, 0.2, 1.0))
        assert volume.shape == (820, 616, 97)
        assert volume.metadata["frames"] == 97
        assert volume.metadata["colour"] is False
        itk = sitk.ReadImage(str(path))  # the trap: 2D with 97 "colour" components
        assert (itk.GetDimension(), itk.GetNumberOfComponentsPerPixel()) == (2, 97)
        np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(itk).transpose(1, 0, 2))
        assert not np.array_equal(volume.array[..., 0], volume.array[..., 96])

    def test_tiff_is_not_a_landing_format(self, real_data: Path) -> None:
        with pytest.raises(VolumeReadError, match="not a landing format"):
            read_volume(real_data / "tif" / "SUB01_img1.tif")


@pytest.mark.parametrize("esize", [2**31 - 8, 8, -16])
@pytest.mark.parametrize("compressed", [False, True])
def test_a_nifti_extension_size_is_checked_before_nibabel_reads_it(
    tmp_path: Path, esize: int, compressed: bool
) -> None:
    """A damaged extension size made nibabel allocate up to 2 GiB (found by fuzzing)."""
    header = nib.Nifti1Header()
    header.set_data_shape(PHANTOM.shape)
    header.set_data_dtype(np.uint16)
    header["vox_offset"] = 352 + 16
    block = header.binaryblock + b"\x01\x00\x00\x00" + np.array([esize, 0], "<i4").tobytes()
    body = block + b"\x00" * 8 + PHANTOM.tobytes(order="F")
    path = tmp_path / ("bmode.nii.gz" if compressed else "bmode.nii")
    path.write_bytes(gzip.compress(body) if compressed else body)
    with pytest.raises(VolumeReadError, match="extension"):
        read_volume(path)


def test_a_well_formed_nifti_extension_still_reads(tmp_path: Path) -> None:
    image = nib.Nifti1Image(PHANTOM, np.diag([*SPACING, 1.0]))
    image.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment, 24 bytes"))
    nib.save(image, tmp_path / "bmode.nii.gz")
    np.testing.assert_array_equal(read_volume(tmp_path / "bmode.nii.gz").array, PHANTOM)


def test_a_bzip2_nrrd_reads_and_a_cut_one_is_truncated(tmp_path: Path) -> None:
    """bzip2 is measured with the same bounded streaming as gzip (pynrrd inflates it whole)."""
    path = tmp_path / "bmode.nrrd"
    nrrd.write(str(path), PHANTOM, {"encoding": "bzip2", "spacings": list(SPACING)})
    np.testing.assert_array_equal(read_volume(path).array, PHANTOM)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(VolumeReadError, match="truncated"):
        read_volume(path)
