"""NIfTI, NRRD and MetaImage decoders: header checks first, then pixels in file index order.

Each decoder reads the header alone, refuses an impossible declared size before allocating, and
only then reads the voxels. Arrays come back in the file's (i, j, k) index order, which nibabel
and pynrrd give directly and SimpleITK gives reversed, as (k, j, i).
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import nrrd
import numpy as np
import SimpleITK as sitk
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError
from nrrd.errors import NRRDError

from layer_platform.errors import VolumeReadError
from layer_platform.io.formats import (
    MAX_VOLUME_BYTES,
    Channels,
    Decoded,
    check_compressed_length,
    check_declared_size,
    companion_file,
    compressed_ends_early,
    damaged,
)
from layer_platform.io.geometry import NRRD_SPACE_TO_LPS, Vector3, lps_vector, unit
from layer_platform.io.nifti_extensions import check_nifti_extensions
from layer_platform.io.volume import LPS_RAS_FLIP

#: Length units that headers name, in mm. NIfTI's "unknown" is read as mm, as every viewer does.
MM_PER_UNIT: dict[str, float] = {
    "mm": 1.0,
    "millimeter": 1.0,
    "millimeters": 1.0,
    "cm": 10.0,
    "m": 1000.0,
    "meter": 1000.0,
    "um": 1e-3,
    "micron": 1e-3,
    "unknown": 1.0,
}

#: NRRD axis kinds that are space (or time: a frame axis); any other kind holds components.
_NRRD_DOMAIN_KINDS = frozenset({"domain", "space", "time"})
_NRRD_COLOUR_KINDS = frozenset({"RGB-color", "RGBA-color", "3-color", "4-color"})
_NRRD_GZIP = frozenset({"gzip", "gz"})
_NRRD_COMPRESSED = _NRRD_GZIP | {"bzip2", "bz2"}

#: Bytes per MetaImage element type (MetaIO's MET_ValueTypeSize).
_MET_ITEMSIZE: dict[str, int] = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
_MAX_METAIMAGE_HEADER = 1 << 24  # PLUS writes per-frame fields: headers can be megabytes
_NIFTI1_HEADER_BYTES = 348  # the smallest NIfTI header (NIfTI-2: 540)


def _mm(value: float, factor: float) -> float | None:
    """Positive spacing in mm, through the shortest decimal of a float32 header value."""
    return float(str(np.float32(value))) * factor if np.isfinite(value) and value > 0 else None


def channels_for_count(name: str, count: int) -> Channels:
    """Components without a declared meaning: 3/4 are colour, more are frames (PLUS), 2 neither."""
    if count in (3, 4):
        return "colour"
    if count > 4:
        return "frames"
    raise VolumeReadError(
        f"{name} has {count} values per voxel (a vector or complex image), not a grey volume"
    )


def read_nifti(path: Path) -> Decoded:
    """NIfTI-1/2, plain or gzipped; scl_slope/inter applied (then float32), as for DICOM."""
    name, compressed = path.name, path.name.lower().endswith(".gz")
    check_nifti_extensions(path)
    try:
        image = nib.load(path, mmap=False)
        header = image.header
        shape, dtype = header.get_data_shape(), header.get_data_dtype()
    except EOFError:
        raise compressed_ends_early(name) from None
    except (ImageFileError, HeaderDataError, OSError, ValueError, zlib.error) as exc:
        if compressed:  # a cut gzip can read as "not a NIfTI": say what it really is
            check_compressed_length(name, path, None)
        elif path.stat().st_size < _NIFTI1_HEADER_BYTES:
            raise VolumeReadError(
                f"{name} is truncated: {path.stat().st_size} bytes is less than a NIfTI header;"
                " the export or copy was interrupted, send it again"
            ) from None
        # nibabel's message can quote header fields (descrip, intent_name): the class only
        raise damaged(name, "NIfTI", f"header, {type(exc).__name__}") from None
    offset = int(image.dataobj.offset)
    available = None if compressed else path.stat().st_size - offset
    check_declared_size(name, shape, dtype.itemsize, available)
    if compressed:  # before nibabel allocates the declared size
        check_compressed_length(name, path, offset + math.prod(shape) * dtype.itemsize)
    try:
        data = np.asanyarray(image.dataobj)
    except (EOFError, zlib.error):
        raise compressed_ends_early(name) from None
    except (OSError, ValueError) as exc:
        raise damaged(name, "NIfTI", f"image data, {type(exc).__name__}") from None
    if (image.dataobj.slope, image.dataobj.inter) != (1.0, 0.0):
        data = data.astype(np.float32)
    channels: Channels | None = None
    if dtype.names:  # RGB24/RGBA32: one structured sample per voxel
        data = np.stack([data[field] for field in dtype.names], axis=-1)
        channels = "colour"
    factor = MM_PER_UNIT.get(header.get_xyzt_units()[0], 1.0)
    spacing = tuple(_mm(z, factor) for z in header.get_zooms()[: min(len(shape), 3)])
    if int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        return Decoded(data, spacing, channels, {"dtype": str(dtype)})  # no stated geometry
    lps = LPS_RAS_FLIP @ image.affine  # nibabel's choice, as ITK's: sform, else qform
    origin = lps_vector(lps[:3, 3] * factor)
    directions = tuple(unit(lps[:3, axis]) for axis in range(len(spacing)))
    return Decoded(data, spacing, channels, {"dtype": str(dtype)}, origin, directions)


def _direction(header: dict[str, Any], axis: int) -> np.ndarray | None:
    """The axis's space direction, or None for 'none' (a NaN row or None, per pynrrd version)."""
    row = header["space directions"][axis]
    return None if row is None or np.isnan(np.asarray(row, dtype=float)).all() else np.asarray(row)


def _nrrd_kinds(header: dict[str, Any], ndim: int) -> list[str | None]:
    kinds = header.get("kinds") or [None] * ndim
    return [None if kind in (None, "none", "???") else str(kind) for kind in kinds]


def _nrrd_component_axes(header: dict[str, Any], kinds: list[str | None]) -> list[int]:
    """Axes holding per-voxel components, by their kind or, with no kind, a 'none' direction."""

    def is_component(axis: int) -> bool:
        if kinds[axis] is not None:
            return kinds[axis] not in _NRRD_DOMAIN_KINDS
        return "space directions" in header and _direction(header, axis) is None

    return [axis for axis in range(len(kinds)) if is_component(axis)]


def _nrrd_channels(name: str, kind: str | None, count: int) -> Channels:
    """PLUS writes frames as a ``list`` axis; vectors, tensors and the like are not images."""
    if kind in _NRRD_COLOUR_KINDS:
        return "colour"
    if kind == "list":
        return "frames"
    if kind is None:
        return channels_for_count(name, count)
    raise VolumeReadError(f"{name} holds {kind!r} values ({count} per voxel), not a grey volume")


def _nrrd_spacing(header: dict[str, Any], axes: list[int]) -> tuple[float | None, ...]:
    units = {str(unit) for unit in header.get("space units", ["mm"])}
    factor = MM_PER_UNIT.get(units.pop()) if len(units) == 1 else None  # mixed units: unknown
    if "space directions" in header:
        directions = [_direction(header, axis) for axis in axes]
        steps = [np.nan if d is None else float(np.linalg.norm(d)) for d in directions]
    else:
        steps = [float(header.get("spacings", np.full(len(axes), np.nan))[a]) for a in axes]
    return tuple(_mm(step, factor) if factor else None for step in steps)


def _nrrd_data(path: Path, header: dict[str, Any], header_end: int) -> tuple[Path, int, int]:
    """Where the stored samples are: (file, offset, byte skip).

    A detached header's data file must sit beside the header as a plain file, whatever the
    encoding. A byte skip is a number of bytes to pass over, or -1 ("the data ends the file",
    raw only): anything else would seek outside the data or inflate a stream to an unchecked
    length, so it is refused.
    """
    data_file = header.get("data file", header.get("datafile"))
    if data_file is None:
        source, offset = path, header_end
    else:
        source, offset = companion_file(path.name, path, str(data_file), "NRRD"), 0
    skip = int(header.get("byte skip", header.get("byteskip", 0)))
    if skip < -1 or (skip == -1 and header.get("encoding") != "raw") or skip > MAX_VOLUME_BYTES:
        raise VolumeReadError(
            f"{path.name} has an invalid 'byte skip': a count of bytes up to"
            f" {MAX_VOLUME_BYTES}, or -1 with raw encoding only"
        )
    return source, offset, skip


def _nrrd_available(header: dict[str, Any], source: Path, offset: int, skip: int) -> int | None:
    """Stored bytes of a raw NRRD's samples (None when compressed).

    With a byte skip of -1 the samples are the file's last bytes (pynrrd seeks back from the
    end), so what precedes them does not count as surplus.
    """
    if header["encoding"] != "raw":
        return None
    available = source.stat().st_size - offset - max(skip, 0)
    if skip == -1:
        declared = math.prod(int(n) for n in header["sizes"])
        return min(available, declared * nrrd.reader._determine_datatype(header).itemsize)
    return available


def _nrrd_check_stream(
    name: str, header: dict[str, Any], source: Path, offset: int, skip: int
) -> None:
    """pynrrd inflates the whole stream, however large: measure it first, exactly."""
    declared = math.prod(int(n) for n in header["sizes"])
    needed = declared * nrrd.reader._determine_datatype(header).itemsize + skip
    codec = "zlib" if header["encoding"] in _NRRD_GZIP else "bzip2"
    check_compressed_length(name, source, needed, offset=offset, exact=True, codec=codec)


def read_nrrd(path: Path) -> Decoded:
    """NRRD (attached ``.nrrd`` or detached ``.nhdr``) via pynrrd, in (i, j, k) order.

    An axis whose kind is not spatial becomes the component axis: colour kinds are colour, and a
    ``list`` is frames (PLUS writes its frames so; SimpleITK would take them for 97 colours).
    """
    name = path.name
    header: dict[str, Any] = {}
    try:
        with path.open("rb") as handle:
            header = nrrd.read_header(handle)
            # pynrrd's own type table; its public read would allocate before we could check.
            dtype = nrrd.reader._determine_datatype(header)
            sizes = [int(n) for n in header["sizes"]]
            source, offset, skip = _nrrd_data(path, header, handle.tell())
            available = _nrrd_available(header, source, offset, skip)
            check_declared_size(name, tuple(sizes), dtype.itemsize, available)
            if header["encoding"] in _NRRD_COMPRESSED:
                _nrrd_check_stream(name, header, source, offset, skip)
            data = nrrd.read_data(header, handle, str(path))
    except VolumeReadError:
        raise
    except (NRRDError, OSError, KeyError, ValueError, TypeError, StopIteration, zlib.error) as exc:
        if header.get("encoding") in _NRRD_COMPRESSED and isinstance(exc, NRRDError | ValueError):
            raise compressed_ends_early(name) from None  # pynrrd's symptom: too few samples
        # pynrrd's message can quote a header field's value: name the error's class only
        raise damaged(name, "NRRD", f"header or data, {type(exc).__name__}") from None

    kinds = _nrrd_kinds(header, len(sizes))
    components = _nrrd_component_axes(header, kinds)
    kept = [axis for axis in range(len(sizes)) if axis not in components or sizes[axis] > 1]
    data = np.squeeze(data, axis=tuple(a for a in range(len(sizes)) if a not in kept))
    components = [axis for axis in components if axis in kept]
    if len(components) > 1:
        raise VolumeReadError(f"{name} has {len(components)} non-spatial axes of several values")
    channels: Channels | None = None
    if components:
        axis = components[0]
        data = np.moveaxis(data, kept.index(axis), -1)
        channels = _nrrd_channels(name, kinds[axis], sizes[axis])
    spatial = [axis for axis in kept if axis not in components]
    origin, directions = _nrrd_geometry(header, spatial)
    return Decoded(data, _nrrd_spacing(header, spatial), channels, {}, origin, directions)


def _nrrd_geometry(
    header: dict[str, Any], axes: list[int]
) -> tuple[Vector3 | None, tuple[Vector3 | None, ...]]:
    """LPS origin and per-axis directions from ``space``, ``space origin``/``directions``."""
    sign = NRRD_SPACE_TO_LPS.get(str(header.get("space", "")).lower(), (1.0, 1.0, 1.0))
    units = {str(unit) for unit in header.get("space units", ["mm"])}
    factor = MM_PER_UNIT.get(units.pop(), 1.0) if len(units) == 1 else 1.0
    raw_origin = header.get("space origin")
    origin = None
    if raw_origin is not None and np.isfinite(np.asarray(raw_origin, dtype=float)).all():
        origin = lps_vector(np.asarray(raw_origin, dtype=float) * factor, sign)
    if "space directions" not in header:
        return origin, ()
    rows = [_direction(header, axis) for axis in axes]
    return origin, tuple(None if row is None else unit(row, sign) for row in rows)


def _metaimage_fields(path: Path) -> tuple[dict[str, str], int]:
    """MetaImage ``key = value`` fields up to ElementDataFile, and the header's length in bytes.

    SimpleITK does not expose CompressedData or ElementDataFile, and defaults a missing
    ElementSpacing to 1 mm; these decide the size check and whether spacing is really known.
    """
    fields: dict[str, str] = {}
    length = 0
    with path.open("rb") as handle:
        for line in iter(lambda: handle.readline(1 << 16), b""):
            length += len(line)
            key, _, value = line.decode("latin-1").partition("=")
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile" or length > _MAX_METAIMAGE_HEADER:
                break
    return fields, length


#: MetaImage integer fields checked before SimpleITK parses the header: (smallest, largest).
#: MetaIO loops forever on ``NDims = -1`` (found by fuzzing), so no field reaches it unchecked.
_MET_INT_FIELDS: dict[str, tuple[int, int]] = {
    "NDims": (1, 4),
    "ElementNumberOfChannels": (1, 1 << 16),
    "HeaderSize": (-1, 1 << 31),
    "CompressedDataSize": (0, 1 << 40),
}


def _check_metaimage_fields(name: str, fields: dict[str, str]) -> None:
    """Refuse a MetaImage header whose structural fields are not sane integers or types."""

    def integers(key: str) -> list[int]:
        try:
            return [int(v) for v in fields[key].split()]
        except ValueError:
            raise damaged(name, "MetaImage", f"{key} is not a list of integers") from None

    if "ElementDataFile" not in fields:
        raise damaged(name, "MetaImage", "no ElementDataFile line in the header")
    if "NDims" not in fields or "DimSize" not in fields:
        raise damaged(name, "MetaImage", "NDims or DimSize is missing")
    for key, (lo, hi) in _MET_INT_FIELDS.items():
        if key in fields and (len(values := integers(key)) != 1 or not lo <= values[0] <= hi):
            raise damaged(name, "MetaImage", f"{key} must be one integer in {lo}..{hi}")
    sizes = integers("DimSize")
    if len(sizes) != int(fields["NDims"]) or min(sizes) < 1:
        raise damaged(name, "MetaImage", "DimSize must hold NDims positive integers")
    if fields.get("ElementType") not in _MET_ITEMSIZE:
        raise damaged(name, "MetaImage", "ElementType is not a known MET_ scalar type")


def read_metaimage(path: Path) -> Decoded:
    """MetaImage (``.mha`` or ``.mhd`` + data file) via SimpleITK, reordered to (i, j, k)."""
    name = path.name
    fields, header_end = _metaimage_fields(path)
    _check_metaimage_fields(name, fields)
    data_file = fields["ElementDataFile"]
    if data_file == "LOCAL":
        source, offset = path, header_end
    else:  # before SimpleITK sees the header: a LIST or a pattern would open other files
        source, offset = companion_file(name, path, data_file, "MetaImage"), 0
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise damaged(name, "MetaImage", "header cannot be parsed") from None
    size, count = reader.GetSize(), reader.GetNumberOfComponents()
    compressed = fields.get("CompressedData", "False").lower() == "true"
    itemsize = _MET_ITEMSIZE[fields["ElementType"]]
    available = None if compressed else source.stat().st_size - offset
    check_declared_size(name, (*size, count), itemsize, available)
    if compressed:  # SimpleITK would allocate it all and zero-fill what a short stream lacks
        check_compressed_length(name, source, math.prod((*size, count)) * itemsize, offset=offset)
    try:
        image = reader.Execute()
    except RuntimeError:
        raise damaged(name, "MetaImage", "its image data is truncated or damaged") from None
    data = sitk.GetArrayFromImage(image)
    dims = image.GetDimension()
    order = tuple(reversed(range(dims))) + ((dims,) if count > 1 else ())
    known = "ElementSpacing" in fields or "ElementSize" in fields
    spacing = tuple(_mm(s, 1.0) if known else None for s in image.GetSpacing())
    channels = channels_for_count(name, count) if count > 1 else None
    direction = np.asarray(image.GetDirection()).reshape(dims, dims)  # ITK: LPS, columns = axes
    directions = tuple(unit(direction[:, axis]) for axis in range(dims))
    origin = lps_vector(image.GetOrigin())
    return Decoded(np.transpose(data, order), spacing, channels, {}, origin, directions)
