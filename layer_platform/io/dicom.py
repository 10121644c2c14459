"""DICOM ultrasound in and out, with patient identity removed the moment a file is parsed.

Reading strips PHI (:func:`strip_phi`) before anything else looks at the dataset, and never
quotes pydicom's own error text: a parse error can echo an element's value, and a value can be a
patient's name. Spacing comes from ``PixelSpacing`` or, as ultrasound machines usually write it,
from the ``SequenceOfUltrasoundRegions`` calibration (PhysicalDeltaX/Y in cm): SimpleITK ignores
the latter and reports 1.0 mm, which is why DICOM is read with pydicom here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid
from pydicom.valuerep import DSfloat

from layer_platform.io.formats import Decoded, check_declared_size, damaged
from layer_platform.io.geometry import Vector3, lps_vector, unit

#: Identifying elements removed wherever they occur (after the DICOM PS3.15 basic application
#: level confidentiality profile): identifiers, addresses, institution, device and study
#: identity, and the instance UIDs that would link a file back to the hospital's PACS.
PHI_KEYWORDS: frozenset[str] = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "IssuerOfPatientID",
        "MedicalRecordLocator",
        "PatientState",
        "PatientReligiousPreference",
        "PatientSexNeutered",
        "EthnicGroup",
        "Occupation",
        "MilitaryRank",
        "BranchOfService",
        "CountryOfResidence",
        "RegionOfResidence",
        "MedicalAlerts",
        "Allergies",
        "ResponsibleOrganization",
        "PatientInsurancePlanCodeSequence",
        "ReferencedPatientSequence",
        "ReferringPhysicianName",
        "ReferringPhysicianIdentificationSequence",
        "PhysiciansOfRecordIdentificationSequence",
        "PerformingPhysicianIdentificationSequence",
        "OperatorIdentificationSequence",
        "RequestingService",
        "InstitutionName",
        "InstitutionalDepartmentName",
        "StationName",
        "DeviceSerialNumber",
        "AccessionNumber",
        "StudyID",
        "RequestedProcedureID",
        "ScheduledProcedureStepID",
        "PerformedProcedureStepID",
        "PerformedProcedureStepDescription",
        "ProtocolName",
        "StudyDescription",
        "SeriesDescription",
        "AdmittingDiagnosesDescription",
        "RequestAttributesSequence",
        "ReferencedStudySequence",
        "TimezoneOffsetFromUTC",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "FrameOfReferenceUID",
        "InstanceCreatorUID",
        "IrradiationEventUID",
        "MediaStorageSOPInstanceUID",
        "StorageMediaFileSetUID",
    }
)

#: Value representations dropped wholesale: person names, dates, times and free text. None is
#: needed to decode pixels, and free text is where operators type names and findings.
PHI_VRS: frozenset[str] = frozenset({"PN", "DA", "DT", "TM", "LT", "ST", "UT"})

#: The only header values that reach ``Volume.metadata``.
METADATA_KEYWORDS: tuple[str, ...] = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "PhotometricInterpretation",
)

_PHI_TAGS = frozenset(tag_for_keyword(keyword) for keyword in PHI_KEYWORDS)
_ANNOTATIONS = (0x5000, 0x6000)  # curve and overlay repeating groups
_CM_UNITS = 3  # PhysicalUnitsX/YDirection code for centimetres (PS3.3 C.8.5.5.1.15)


def _dictionary_vr(tag: BaseTag) -> str | None:
    """The VR the standard defines (a file may store a name as UN); None if private or unknown.

    Looking the VR up, rather than reading the element, never converts a value: conversion can
    warn, and the warning quotes the value.
    """
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def strip_phi(ds: Dataset) -> Dataset:
    """Remove patient-identifying elements from ``ds`` in place (nested sequences included).

    Drops private and unknown tags (vendor-defined, often holding the patient's name), the
    :data:`PHI_KEYWORDS`, every element whose VR is in :data:`PHI_VRS`, and overlays (60xx) and
    curves (50xx), which can hold burned-in annotations. Burned-in text in the pixels is not
    detected. Returns ``ds`` for chaining.
    """
    for tag in list(ds.keys()):
        vr = _dictionary_vr(tag)
        if vr is None or vr in PHI_VRS or tag in _PHI_TAGS or tag.group & 0xFF00 in _ANNOTATIONS:
            del ds[tag]
        elif vr == "SQ":
            for item in ds[tag].value:
                strip_phi(item)
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        strip_phi(file_meta)
    return ds


def _measure(ds: Dataset, keyword: str) -> Any:
    """A pixel-measure value from the top level or, in enhanced files, the shared groups."""
    if keyword in ds:
        return ds[keyword].value
    for group in ds.get("SharedFunctionalGroupsSequence", []):
        for measures in group.get("PixelMeasuresSequence", []):
            if keyword in measures:
                return measures[keyword].value
    return None


def _plane(ds: Dataset, keyword: str, sequence: str) -> Any:
    """An image-plane value from the top level, else the shared, else the first frame's group."""
    if keyword in ds:
        return ds[keyword].value
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(groups, [])[:1]:
            for plane in item.get(sequence, [])[:1]:
                if keyword in plane:
                    return plane[keyword].value
    return None


def _geometry(ds: Dataset) -> tuple[Vector3 | None, tuple[Vector3 | None, ...]]:
    """LPS origin and (column, row, frame) directions from the image plane, where stated.

    ImageOrientationPatient holds the direction of increasing column index, then of row index;
    frames follow their normal. Ultrasound files usually state neither (origin 0, identity).
    """
    position = _plane(ds, "ImagePositionPatient", "PlanePositionSequence")
    orientation = _plane(ds, "ImageOrientationPatient", "PlaneOrientationSequence")
    origin = lps_vector([float(v) for v in position]) if position and len(position) == 3 else None
    if not orientation or len(orientation) != 6:
        return origin, ()
    columns = unit([float(v) for v in orientation[:3]])
    rows = unit([float(v) for v in orientation[3:]])
    if columns is None or rows is None:
        return origin, ()
    return origin, (columns, rows, unit(np.cross(columns, rows)))


def _positive(value: Any) -> float | None:
    return float(value) if value not in (None, "") and float(value) > 0 else None


def _region_spacing(ds: Dataset) -> tuple[float | None, float | None]:
    """(lateral, depth) mm from calibrated ultrasound regions, if they all agree."""
    deltas = {
        (float(region.PhysicalDeltaX) * 10.0, float(region.PhysicalDeltaY) * 10.0)
        for region in ds.get("SequenceOfUltrasoundRegions", [])
        if region.get("PhysicalUnitsXDirection") == _CM_UNITS
        and region.get("PhysicalUnitsYDirection") == _CM_UNITS
        and float(region.get("PhysicalDeltaX", 0)) > 0
        and float(region.get("PhysicalDeltaY", 0)) > 0
    }
    return next(iter(deltas)) if len(deltas) == 1 else (None, None)


def _spacing(ds: Dataset) -> tuple[float | None, float | None, float | None]:
    """(column, row, frame) spacing in mm; PixelSpacing is (row pitch, column pitch)."""
    pixel = _measure(ds, "PixelSpacing")
    if pixel:
        lateral, depth = _positive(pixel[1]), _positive(pixel[0])
    else:
        lateral, depth = _region_spacing(ds)
    frame = _measure(ds, "SpacingBetweenSlices") or _measure(ds, "SliceThickness")
    return lateral, depth, _positive(frame)


def _check_pixel_module(ds: Dataset, name: str) -> None:
    if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
        raise damaged(name, "DICOM image", "it holds no pixel data")
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    shape = (int(ds.Columns), int(ds.Rows), frames, samples)
    itemsize = max(int(ds.get("BitsAllocated") or 8) // 8, 1)
    compressed = ds.file_meta.TransferSyntaxUID.is_compressed
    stored = None if compressed else len(ds.get_item("PixelData", keep_deferred=True).value)
    check_declared_size(name, shape, itemsize, stored)


def open_dataset(path: Path) -> Dataset:
    """Parse a DICOM file and strip its PHI: the only way the platform opens one.

    Raises:
        VolumeReadError: not DICOM, or unparsable; the reason never quotes pydicom's message,
            which can echo an element value, and the original exception is not chained.
    """
    try:
        return strip_phi(pydicom.dcmread(path))
    except InvalidDicomError:
        raise damaged(path.name, "DICOM", "no DICOM file marker") from None
    except Exception as exc:  # see Raises: keep only the error's class
        raise damaged(path.name, "DICOM", f"unreadable header, {type(exc).__name__}") from None


def read_dicom(path: Path) -> Decoded:
    """Decode a single- or multi-frame DICOM into (columns, rows, frames[, samples]), PHI-free.

    Palette colour is expanded through its lookup table and YBR to RGB (pydicom's default), so
    colour reaches the reader as RGB samples. RescaleSlope/Intercept, when not the identity,
    are applied and give float32.
    """
    name = path.name
    ds = open_dataset(path)
    try:
        _check_pixel_module(ds, name)
        spacing = _spacing(ds)
    except (ValueError, TypeError, AttributeError):
        raise damaged(name, "DICOM", "malformed image geometry elements") from None
    try:
        origin, directions = _geometry(ds)
    except (ValueError, TypeError, AttributeError):  # as if absent: the pixels are still good
        origin, directions = None, ()
    try:
        pixels = ds.pixel_array
        stored_dtype = str(pixels.dtype)
        if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
            pixels = apply_color_lut(pixels, ds)
    except Exception as exc:  # as in open_dataset: never echo pydicom's text
        raise damaged(name, "DICOM", f"undecodable pixels, {type(exc).__name__}") from None

    frames = int(ds.get("NumberOfFrames") or 1)
    colour = pixels.ndim == (4 if frames > 1 else 3)
    if frames == 1:
        pixels = pixels[np.newaxis]
    pixels = np.moveaxis(pixels, (0, 1, 2), (2, 1, 0))  # (frame, row, col) -> (col, row, frame)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    if (slope, intercept) != (1.0, 0.0):
        pixels = (pixels * slope + intercept).astype(np.float32)
    metadata: dict[str, Any] = {"dtype": stored_dtype}
    metadata.update({key: str(ds[key].value) for key in METADATA_KEYWORDS if key in ds})
    return Decoded(
        array=np.ascontiguousarray(pixels),
        spacing=spacing,
        channels="colour" if colour else None,
        metadata=metadata,
        origin=origin,
        directions=directions,
    )


def _grey_samples(array: np.ndarray) -> np.ndarray:
    """uint8 or uint16 samples: what MONOCHROME2 ultrasound files hold."""
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"DICOM stores integer grey levels; got {array.dtype} (quantise first)")
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if lo < 0 or hi > np.iinfo(np.uint16).max:
        raise ValueError(f"DICOM grey levels must lie in 0..65535; got {lo}..{hi}")
    return array.astype(np.uint8 if array.dtype.itemsize == 1 else np.uint16)


def write_dicom(
    path: Path,
    array: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    extra: Mapping[str, Any] | None = None,
    origin: Vector3 = (0.0, 0.0, 0.0),
    direction: Any = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
) -> None:
    """Write a canonical (lateral, depth, sweep) volume as one multi-frame MONOCHROME2 file.

    Columns are lateral, rows depth, frames the sweep; ``PixelSpacing`` = (depth, lateral) and
    ``SpacingBetweenSlices`` = sweep, in mm; ``ImagePositionPatient`` = ``origin`` and
    ``ImageOrientationPatient`` = the lateral and depth columns of ``direction`` (LPS; the
    sweep is their normal, so a left-handed direction does not survive). ``extra`` sets
    further elements by keyword (tests use it to plant PHI). Not atomic by itself:
    ``writers.write_volume`` is.
    """
    samples = _grey_samples(array)
    ds = Dataset()
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "US"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Columns, ds.Rows, ds.NumberOfFrames = samples.shape
    ds.BitsAllocated = ds.BitsStored = 8 * samples.dtype.itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [DSfloat(spacing[1], auto_format=True), DSfloat(spacing[0], auto_format=True)]
    ds.SpacingBetweenSlices = DSfloat(spacing[2], auto_format=True)
    axes = np.asarray(direction, dtype=float)
    ds.ImagePositionPatient = [DSfloat(float(v), auto_format=True) for v in origin]
    ds.ImageOrientationPatient = [
        DSfloat(float(v), auto_format=True) for v in (*axes[:, 0], *axes[:, 1])
    ]
    for keyword, value in (extra or {}).items():
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"{keyword!r} is not a DICOM keyword")
        setattr(ds, keyword, value)
    ds.PixelData = samples.transpose(2, 1, 0).astype(samples.dtype.newbyteorder("<")).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
