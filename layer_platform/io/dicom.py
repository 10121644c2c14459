"""DICOM ultrasound in and out, keeping only an allowlist of elements the moment a file is parsed.

Reading keeps the pixel, geometry and ultrasound-region elements (:data:`ALLOWED_KEYWORDS`) and
drops everything else before anything looks at the dataset (:func:`strip_phi`), and never quotes
pydicom's own error text: a parse error can echo an element's value, and a value can be a
patient's name. Spacing comes from ``PixelSpacing`` or, as ultrasound machines usually write it,
from the ``SequenceOfUltrasoundRegions`` calibration (PhysicalDeltaX/Y in cm): SimpleITK ignores
the latter and reports 1.0 mm, which is why DICOM is read with pydicom here.

Pixels can carry burned-in text (a name typed on the scanner). A file whose
``BurnedInAnnotation`` is not ``NO`` has everything outside its calibrated ultrasound regions
zeroed here, and says so in ``metadata["burned_in"]``; the intake decides whether to accept it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.pixels import apply_color_lut
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)
from pydicom.valuerep import DSfloat

from layer_platform.errors import VolumeReadError
from layer_platform.io.dicom_allowlist import METADATA_KEYWORDS, strip_phi
from layer_platform.io.formats import Decoded, check_declared_size, damaged
from layer_platform.io.geometry import Vector3, lps_vector, unit

#: Elements larger than this are not read while parsing; PixelData is fetched only after its
#: declared size was checked, and other large elements are dropped unread.
DEFER_BYTES = 1 << 20

_CM_UNITS = 3  # PhysicalUnitsX/YDirection code for centimetres (PS3.3 C.8.5.5.1.15)


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


def _region_mask(ds: Dataset, shape: tuple[int, int]) -> np.ndarray | None:
    """(columns, rows) True inside the ultrasound regions; None when no region is usable.

    The regions are where the scanner put image data; its annotations (names, dates) are drawn
    around them, so zeroing the rest removes burned-in text from a region-calibrated file.
    """
    inside = np.zeros(shape, dtype=bool)
    for region in ds.get("SequenceOfUltrasoundRegions", []):
        try:
            x0, y0 = int(region.RegionLocationMinX0), int(region.RegionLocationMinY0)
            x1, y1 = int(region.RegionLocationMaxX1), int(region.RegionLocationMaxY1)
        except (AttributeError, TypeError, ValueError):
            continue
        if 0 <= x0 <= x1 < shape[0] and 0 <= y0 <= y1 < shape[1]:
            inside[x0 : x1 + 1, y0 : y1 + 1] = True
    return inside if inside.any() else None


def _check_pixel_module(ds: Dataset, name: str) -> None:
    if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
        raise damaged(name, "DICOM image", "it holds no pixel data")
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    shape = (int(ds.Columns), int(ds.Rows), frames, samples)
    itemsize = max(int(ds.get("BitsAllocated") or 8) // 8, 1)
    compressed = ds.file_meta.TransferSyntaxUID.is_compressed
    item = ds.get_item("PixelData", keep_deferred=True)
    if item.value is None:  # deferred: what the file really holds after the element's start
        stored = min(item.length, Path(ds.filename).stat().st_size - item.value_tell)
    else:
        stored = len(item.value)
    stored = None if compressed else stored
    check_declared_size(name, shape, itemsize, stored)


class _BoundedFile(io.FileIO):
    """A file whose reads never ask for more than it holds.

    pydicom reads an element with ``read(length)``, trusting the length in the file: a damaged
    length of 4 GiB made it allocate 4 GiB for a 1 kB file (found by fuzzing).
    """

    def __init__(self, path: Path | str, mode: str = "rb") -> None:
        super().__init__(str(path), mode)  # a str name: pydicom reopens it for deferred reads
        self._size = os.fstat(self.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        remaining = max(self._size - self.tell(), 0)
        return super().read(remaining if size is None or size < 0 else min(size, remaining))


def open_dataset(path: Path) -> Dataset:
    """Parse a DICOM file and strip its PHI: the only way the platform opens one.

    Raises:
        VolumeReadError: not DICOM, or unparsable; the reason never quotes pydicom's message,
            which can echo an element value, and the original exception is not chained.
    """
    try:
        with _BoundedFile(path) as handle:
            read_preamble(handle, False)
            # pydicom's own meta reader, on the bounded file (the public one opens the path)
            syntax = _read_file_meta_info(handle).get("TransferSyntaxUID")
            if syntax == DeflatedExplicitVRLittleEndian:  # pydicom inflates it whole, uncapped
                raise VolumeReadError(
                    f"{path.name} uses the deflated transfer syntax, which is not accepted (it"
                    " cannot be read with a bounded buffer); export it uncompressed"
                )
            handle.seek(0)
            return strip_phi(pydicom.dcmread(handle, defer_size=DEFER_BYTES))
    except VolumeReadError:
        raise
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
    burned_in = "NO" if str(ds.get("BurnedInAnnotation", "")).upper() == "NO" else "unmasked"
    if burned_in != "NO" and (inside := _region_mask(ds, pixels.shape[:2])) is not None:
        pixels = np.where(inside.reshape(inside.shape + (1,) * (pixels.ndim - 2)), pixels, 0)
        burned_in = "masked"
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    if (slope, intercept) != (1.0, 0.0):
        pixels = (pixels * slope + intercept).astype(np.float32)
    metadata: dict[str, Any] = {"dtype": stored_dtype, "burned_in": burned_in}
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
    ds.BurnedInAnnotation = "NO"  # the platform writes no text into pixels
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
