"""DICOM: ultrasound calibration, colour to grey, the writer, and no PHI past the reader."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit

from layer_platform.errors import VolumeReadError
from layer_platform.io import read_volume
from layer_platform.io.dicom import open_dataset, write_dicom
from layer_platform.io.dicom_allowlist import ALLOWED_KEYWORDS, strip_phi

SPACING = (0.3, 0.2, 0.75)
PHANTOM = np.arange(5 * 7 * 3, dtype=np.uint16).reshape(5, 7, 3)

#: Identifying values planted in test files; none may survive a read.
PLANTED = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-4711-XYZ",
    "PatientBirthDate": "19700101",
    "InstitutionName": "St Example Hospital",
    "ReferringPhysicianName": "Who^Doctor",
    "AccessionNumber": "ACC-99881",
    "StudyID": "STUDY-77",
}


def _assert_no_phi(text: str) -> None:
    leaked = [value for value in PLANTED.values() if value in text]
    assert not leaked, f"PHI leaked: {leaked}"


@pytest.fixture
def phi_dicom(tmp_path: Path) -> Path:
    path = tmp_path / "bmode.dcm"
    write_dicom(path, PHANTOM, SPACING, extra=PLANTED)
    assert b"Doe^Jane" in path.read_bytes()  # the plant took
    return path


def test_aloka_spacing_comes_from_the_ultrasound_regions(real_data: Path) -> None:
    path = real_data / "dicom" / "gdcm-US-ALOKA-16.dcm"
    region = pydicom.dcmread(path).SequenceOfUltrasoundRegions[0]
    assert (region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection) == (3, 3)  # cm
    volume = read_volume(path)
    assert volume.spacing[:2] == pytest.approx(
        (region.PhysicalDeltaX * 10, region.PhysicalDeltaY * 10)
    )
    assert sitk.ReadImage(str(path)).GetSpacing()[:2] == (1.0, 1.0)  # what we must not trust
    assert volume.shape == (640, 480, 1)  # palette colour became one grey channel
    assert volume.metadata["frames"] == 1
    assert volume.metadata["PhotometricInterpretation"] == "PALETTE COLOR"
    assert len(np.unique(volume.array)) > 16


def test_rgb_becomes_luminance_and_needs_spacing(real_data: Path) -> None:
    path = real_data / "dicom" / "US1_UNCR.dcm"
    with pytest.raises(VolumeReadError, match="spacing_mm"):
        read_volume(path)
    volume = read_volume(path, spacing=(0.2, 0.2, 1.0))
    assert volume.shape == (640, 480, 1)
    assert volume.array.dtype == np.uint8
    assert volume.metadata["colour"] is True
    rgb = pydicom.dcmread(path).pixel_array.transpose(1, 0, 2)  # (cols, rows, 3)
    grey = volume.array[:, :, 0]
    neutral = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    np.testing.assert_array_equal(grey[neutral], rgb[..., 0][neutral])  # grey stays grey
    colour = ~neutral  # Doppler overlay: luminance lies between its channels
    assert colour.sum() > 100
    assert (grey[colour] >= rgb[colour].min(axis=-1)).all()
    assert (grey[colour] <= rgb[colour].max(axis=-1)).all()


def test_writer_geometry(tmp_path: Path) -> None:
    path = tmp_path / "bmode.dcm"
    write_dicom(path, PHANTOM.astype(np.uint8), SPACING)
    ds = pydicom.dcmread(path)
    assert (ds.Columns, ds.Rows, ds.NumberOfFrames) == (5, 7, 3)
    assert [float(v) for v in ds.PixelSpacing] == [0.2, 0.3]  # (row pitch = depth, lateral)
    assert float(ds.SpacingBetweenSlices) == 0.75
    assert (ds.BitsAllocated, ds.PhotometricInterpretation) == (8, "MONOCHROME2")
    np.testing.assert_array_equal(ds.pixel_array, PHANTOM.transpose(2, 1, 0))


@pytest.mark.parametrize(
    ("array", "extra", "message"),
    [
        (PHANTOM.astype(np.float32), None, "integer"),
        (PHANTOM.astype(np.int32) - 1, None, "0..65535"),
        (PHANTOM, {"NotAKeyword": "x"}, "keyword"),
    ],
)
def test_writer_refuses(
    tmp_path: Path, array: np.ndarray, extra: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        write_dicom(tmp_path / "x.dcm", array, SPACING, extra=extra)


def test_phi_never_reaches_volume_logs_or_warnings(
    phi_dicom: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="layer_platform")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        volume = read_volume(phi_dicom)
    np.testing.assert_array_equal(volume.array, PHANTOM)
    assert volume.metadata["Modality"] == "US"
    _assert_no_phi(repr(volume) + json.dumps(volume.metadata))
    _assert_no_phi(caplog.text)
    assert "read bmode.dcm" in caplog.text  # the log was captured, and it is clean
    _assert_no_phi(" ".join(str(w.message) for w in caught))


def _junk_jpeg(path: Path) -> None:
    """Claim JPEG compression over junk that quotes the patient: pydicom's decoder fails."""
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = encapsulate([b"Doe^Jane MRN-4711-XYZ"] * 3)
    ds.save_as(path)


def _rewrite(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(change(path.read_bytes()))


@pytest.mark.filterwarnings("ignore:End of file reached")
@pytest.mark.parametrize(
    "corrupt",
    [
        _rewrite(lambda data: data[: data.find(b"Doe^Jane") + 4]),  # cut inside the name
        _rewrite(lambda data: data[:-40]),  # cut inside the pixel data
        _rewrite(lambda data: data.replace(b"Doe^Jane", b"Doe^Jane" + b"\xff" * 40, 1)),
        _junk_jpeg,
    ],
)
def test_errors_for_a_corrupt_phi_file_carry_no_phi(
    phi_dicom: Path, corrupt: Callable[[Path], None]
) -> None:
    corrupt(phi_dicom)
    with pytest.raises(VolumeReadError) as error:
        read_volume(phi_dicom)
    _assert_no_phi(str(error.value) + repr(error.value))
    assert error.value.__cause__ is None


def test_the_opened_dataset_is_already_stripped(phi_dicom: Path) -> None:
    ds = open_dataset(phi_dicom)
    _assert_no_phi(str(ds))
    assert ds.Modality == "US" and "PixelData" in ds


def test_strip_phi_removes_identity_and_keeps_geometry(phi_dicom: Path) -> None:
    ds = pydicom.dcmread(phi_dicom)
    region = Dataset()
    region.PhysicalDeltaX = 0.01
    region.PersonName = "Doe^Jane"  # a name nested in a sequence
    region.private_block(0x0029, "ACME", create=True).add_new(0x01, "LO", "MRN-4711-XYZ")
    ds.SequenceOfUltrasoundRegions = [region]
    ds.private_block(0x0011, "ACME", create=True).add_new(0x10, "LO", "Doe^Jane")
    ds.ImageComments = "patient Doe^Jane, follow-up"

    strip_phi(ds)

    _assert_no_phi(str(ds))
    assert not any(element.tag.is_private for element in ds.iterall())
    assert "ImageComments" not in ds and "MediaStorageSOPInstanceUID" not in ds.file_meta
    assert "PersonName" not in ds.SequenceOfUltrasoundRegions[0]
    assert ds.Modality == "US" and [float(v) for v in ds.PixelSpacing] == [0.2, 0.3]
    assert ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX == 0.01
    np.testing.assert_array_equal(ds.pixel_array, PHANTOM.transpose(2, 1, 0))


#: Identifying keywords of the real files; the allowlist must drop every one.
IDENTIFYING = {"PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "StudyDate"}


@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "gdcm-US-ALOKA-16.dcm"])
def test_real_files_open_without_identity(real_data: Path, name: str) -> None:
    original = pydicom.dcmread(real_data / "dicom" / name)
    assert "PatientName" in original and "InstitutionName" in original
    ds = open_dataset(real_data / "dicom" / name)
    remaining = {element.keyword for element in ds.iterall()}
    assert remaining <= ALLOWED_KEYWORDS and not remaining & IDENTIFYING
    assert not any(element.tag.is_private for element in ds.iterall())
    assert str(original.PatientID) not in str(ds)


def test_every_allowed_keyword_is_a_dicom_keyword() -> None:
    assert all(pydicom.datadict.tag_for_keyword(keyword) for keyword in ALLOWED_KEYWORDS)
    geometry = {"ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"}
    assert geometry | {"SequenceOfUltrasoundRegions", "SpacingBetweenSlices"} <= ALLOWED_KEYWORDS


def test_an_unlisted_element_is_dropped_even_if_no_one_called_it_phi(phi_dicom: Path) -> None:
    ds = pydicom.dcmread(phi_dicom)
    ds.DerivationDescription = "scan of Doe^Jane"  # ST: never on any PHI list
    ds.ContentLabel = "DOE"  # CS, not a name VR
    ds.save_as(phi_dicom)
    kept = open_dataset(phi_dicom)
    assert "DerivationDescription" not in kept and "ContentLabel" not in kept


def _with_regions(path: Path, burned_in: str | None, box: tuple[int, int, int, int]) -> None:
    ds = pydicom.dcmread(path)
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = box[0], box[1]
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = box[2], box[3]
    ds.SequenceOfUltrasoundRegions = [region]
    if burned_in is None:
        del ds.BurnedInAnnotation
    else:
        ds.BurnedInAnnotation = burned_in
    ds.save_as(path)


@pytest.mark.parametrize("burned_in", ["YES", None])
def test_burned_in_text_outside_the_regions_is_zeroed(phi_dicom: Path, burned_in) -> None:
    _with_regions(phi_dicom, burned_in, (1, 2, 3, 5))  # columns 1..3, rows 2..5
    volume = read_volume(phi_dicom)
    assert volume.metadata["burned_in"] == "masked"
    inside = np.zeros(PHANTOM.shape[:2], dtype=bool)
    inside[1:4, 2:6] = True
    np.testing.assert_array_equal(volume.array[inside], PHANTOM[inside])
    assert not volume.array[~inside].any() and PHANTOM[~inside].any()


def test_burned_in_without_usable_regions_is_reported_unmasked(phi_dicom: Path) -> None:
    _with_regions(phi_dicom, "YES", (3, 2, 1, 5))  # an empty box
    volume = read_volume(phi_dicom)
    assert volume.metadata["burned_in"] == "unmasked"
    np.testing.assert_array_equal(volume.array, PHANTOM)


def test_a_declared_clean_file_is_left_alone(phi_dicom: Path) -> None:
    assert read_volume(phi_dicom).metadata["burned_in"] == "NO"  # write_dicom declares NO


def test_deflated_transfer_syntax_is_refused_before_inflating(phi_dicom: Path) -> None:
    ds = pydicom.dcmread(phi_dicom)
    ds.save_as(phi_dicom, implicit_vr=False, little_endian=True)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(phi_dicom, enforce_file_format=True)
    with pytest.raises(VolumeReadError, match="deflated"):
        read_volume(phi_dicom)


def test_a_large_deferred_pixel_data_element_reads(tmp_path: Path) -> None:
    """PixelData over ``DEFER_BYTES`` is fetched after the size check, from the same file."""
    big = np.random.default_rng(2).integers(0, 255, size=(128, 128, 80), dtype=np.uint8)
    write_dicom(tmp_path / "bmode.dcm", big, SPACING)
    np.testing.assert_array_equal(read_volume(tmp_path / "bmode.dcm").array, big)


def test_a_damaged_element_length_is_refused_not_allocated(phi_dicom: Path) -> None:
    """A header element claiming ~4 GiB in a small file (found by fuzzing)."""
    ds = pydicom.dcmread(phi_dicom)
    ds.LongCodeValue = "y" * 8  # VR UC: explicit VR gives it a 4-byte length, damaged below
    ds.save_as(phi_dicom)
    data = bytearray(phi_dicom.read_bytes())
    at = data.find(b"y" * 8) - 4
    data[at : at + 4] = (0xFFFFFFF0).to_bytes(4, "little")
    phi_dicom.write_bytes(bytes(data))
    with pytest.raises(VolumeReadError, match="damaged"):
        read_volume(phi_dicom)
