"""The DICOM elements the platform keeps: an allowlist applied the moment a file is parsed.

Pixel, geometry and ultrasound-region elements stay; names, IDs, dates, free text, private
tags, UIDs and overlays go, whether or not anyone thought of listing them as identifying.
"""

from __future__ import annotations

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

#: The only elements kept, at any nesting level: how to decode the pixels (image pixel module,
#: palette tables, rescale), where they lie (pixel measures, plane position and orientation,
#: top level or in functional groups), the ultrasound calibration regions, the burned-in flag,
#: and the metadata facts. Anything else (names, IDs, dates, free text, private tags, UIDs,
#: overlays) is dropped, whether or not anyone thought of listing it as identifying.
ALLOWED_KEYWORDS: frozenset[str] = frozenset(
    {
        # file meta: how the rest is encoded
        "FileMetaInformationGroupLength",
        "FileMetaInformationVersion",
        "MediaStorageSOPClassUID",
        "TransferSyntaxUID",
        "SpecificCharacterSet",
        "SOPClassUID",
        # image pixel module and what decoding needs
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "PlanarConfiguration",
        "Rows",
        "Columns",
        "NumberOfFrames",
        "FrameIncrementPointer",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PixelData",
        "FloatPixelData",
        "DoubleFloatPixelData",
        "ExtendedOffsetTable",
        "ExtendedOffsetTableLengths",
        "RescaleSlope",
        "RescaleIntercept",
        "RedPaletteColorLookupTableDescriptor",
        "GreenPaletteColorLookupTableDescriptor",
        "BluePaletteColorLookupTableDescriptor",
        "AlphaPaletteColorLookupTableDescriptor",
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
        "AlphaPaletteColorLookupTableData",
        "SegmentedRedPaletteColorLookupTableData",
        "SegmentedGreenPaletteColorLookupTableData",
        "SegmentedBluePaletteColorLookupTableData",
        "SegmentedAlphaPaletteColorLookupTableData",
        # geometry, top level or in (shared/per-frame) functional groups
        "PixelSpacing",
        "SliceThickness",
        "SpacingBetweenSlices",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "SharedFunctionalGroupsSequence",
        "PerFrameFunctionalGroupsSequence",
        "PixelMeasuresSequence",
        "PlanePositionSequence",
        "PlaneOrientationSequence",
        # ultrasound calibration regions and their numeric fields
        "SequenceOfUltrasoundRegions",
        "RegionSpatialFormat",
        "RegionDataType",
        "RegionFlags",
        "RegionLocationMinX0",
        "RegionLocationMinY0",
        "RegionLocationMaxX1",
        "RegionLocationMaxY1",
        "ReferencePixelX0",
        "ReferencePixelY0",
        "PhysicalUnitsXDirection",
        "PhysicalUnitsYDirection",
        "ReferencePixelPhysicalValueX",
        "ReferencePixelPhysicalValueY",
        "PhysicalDeltaX",
        "PhysicalDeltaY",
        # burned-in text and the facts that reach Volume.metadata
        "BurnedInAnnotation",
        "Modality",
        "Manufacturer",
        "ManufacturerModelName",
    }
)

#: The only header values that reach ``Volume.metadata``.
METADATA_KEYWORDS: tuple[str, ...] = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "PhotometricInterpretation",
)

_ALLOWED_TAGS = frozenset(tag_for_keyword(keyword) for keyword in ALLOWED_KEYWORDS)
_SEQUENCE_TAGS = frozenset(tag for tag in _ALLOWED_TAGS if dictionary_VR(tag) == "SQ")


def strip_phi(ds: Dataset) -> Dataset:
    """Keep only :data:`ALLOWED_KEYWORDS` in ``ds``, in place (nested sequences included).

    An allowlist, not a denylist: private and unknown tags, every name, ID, date and free-text
    element, overlays and curves go, including those nobody thought of. Burned-in text in the
    pixels is handled by :func:`read_dicom`. Returns ``ds`` for chaining.
    """
    for tag in list(ds.keys()):
        if tag not in _ALLOWED_TAGS:
            del ds[tag]
        elif tag in _SEQUENCE_TAGS:  # by the dictionary: never convert a deferred value
            for item in ds[tag].value:
                strip_phi(item)
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        strip_phi(file_meta)
    return ds
