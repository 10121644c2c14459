"""``read_volume``: any landing file to a canonical :class:`Volume`, or a ``VolumeReadError``.

The format decoders only decode; the rules a sonographer needs to rely on live here, once:
colour becomes grey, PLUS frames become the sweep, a 2D image becomes a one-frame volume, a 4D
image is refused, the axis order is applied, and spacing comes from the header or the override.
Origin and direction come from the header in LPS (``layer_platform.io.volume``); a header that
states none gives origin 0 and the identity direction, as ITK and 3D Slicer read such files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from layer_platform.errors import VolumeReadError
from layer_platform.io.decoders import read_metaimage, read_nifti, read_nrrd
from layer_platform.io.dicom import read_dicom
from layer_platform.io.formats import Decoded, volume_extension
from layer_platform.io.geometry import canonical_geometry
from layer_platform.io.volume import CANONICAL_AXES, Volume
from layer_platform.locations import Location, as_location, is_remote, local_copy

log = logging.getLogger(__name__)

#: Canonical axis letters, in canonical order: lateral, depth (from the skin), sweep.
AXIS_LETTERS = "LDS"

#: ITU-R BT.601 luma weights: the grey a B-mode display would have shown for an RGB screen grab.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: Placeholder spacing (mm) for an axis of one sample, whose pitch no header can state.
SINGLE_SAMPLE_SPACING = 1.0

_DECODERS: dict[str, Callable[[Path], Decoded]] = {
    "nii.gz": read_nifti,
    "nii": read_nifti,
    "nrrd": read_nrrd,
    "nhdr": read_nrrd,
    "mha": read_metaimage,
    "mhd": read_metaimage,
    "dcm": read_dicom,
}


def _permutation(axis_order: str | None) -> tuple[int, int, int]:
    """For each canonical axis, the file axis that holds it."""
    order = (axis_order or AXIS_LETTERS).upper()
    if len(order) != 3 or set(order) != set(AXIS_LETTERS):
        raise ValueError(
            f"axis_order must be a permutation of {AXIS_LETTERS!r} naming the canonical axis of"
            f" file axes (i, j, k), e.g. 'LSD'; got {axis_order!r}"
        )
    lateral, depth, sweep = (order.index(letter) for letter in AXIS_LETTERS)
    return lateral, depth, sweep


def _checked_override(spacing: tuple[float, float, float] | None) -> tuple[float, float, float]:
    values = [float(s) for s in spacing or ()]
    if len(values) != 3 or not all(np.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must be three positive mm values; got {spacing!r}")
    lateral, depth, sweep = values
    return lateral, depth, sweep


def _luminance(name: str, array: np.ndarray) -> np.ndarray:
    """Grey from RGB(A) samples on the last axis, rounded back to the samples' dtype."""
    if array.shape[-1] not in (3, 4):
        raise VolumeReadError(f"{name} has {array.shape[-1]} colour channels; expected RGB(A)")
    grey = array[..., :3].astype(np.float32) @ LUMA_WEIGHTS
    if np.issubdtype(array.dtype, np.integer):
        grey = np.rint(grey)
    return grey.astype(array.dtype)


def _three_axes(name: str, decoded: Decoded) -> tuple[np.ndarray, list[float | None]]:
    """Apply the colour, frames, 2D and 4D policy: a grey (i, j, k) array and its spacing."""
    array = decoded.array
    if decoded.channels == "colour":
        array = _luminance(name, array)
    elif decoded.channels == "frames" and array.ndim != 3:
        raise VolumeReadError(
            f"{name} holds {array.shape[-1]} frames of a {array.ndim - 1}D image: that is 4D data,"
            " export a single 3D volume"
        )
    spacing = list(decoded.spacing)[: array.ndim]
    spacing += [None] * (array.ndim - len(spacing))
    while array.ndim > 3 and array.shape[-1] == 1:
        array, spacing = array[..., 0], spacing[:-1]
    if array.ndim > 3:
        raise VolumeReadError(
            f"{name} is a {array.ndim}D image of shape {array.shape}: a scan file must hold one 3D"
            " volume, not a time series or a multi-channel stack"
        )
    if array.ndim < 2:
        raise VolumeReadError(f"{name} is a {array.ndim}D signal, not an image")
    if array.ndim == 2:
        array, spacing = array[..., np.newaxis], [*spacing, None]
    return array, spacing


def _header_spacing(
    name: str, spacing: list[float | None], shape: tuple[int, ...]
) -> tuple[float, float, float]:
    """Canonical header spacing, or the error that asks for ``spacing_mm``."""
    filled = [
        SINGLE_SAMPLE_SPACING if s is None and n == 1 else s
        for s, n in zip(spacing, shape, strict=True)
    ]
    missing = [axis for axis, s in zip(CANONICAL_AXES, filled, strict=True) if s is None]
    if missing:
        raise VolumeReadError(
            f"{name} has no physical voxel size for the {'/'.join(missing)} axis: add"
            ' "spacing_mm": [lateral, depth, sweep] (in mm) to scan.json'
        )
    lateral, depth, sweep = (float(s) for s in filled if s is not None)
    return lateral, depth, sweep


def read_volume(
    path: Location,
    *,
    axis_order: str | None = None,
    spacing: tuple[float, float, float] | None = None,
) -> Volume:
    """Read a landing file (NIfTI, NRRD, MetaImage or DICOM) as a canonical Volume.

    Args:
        path: ``<role>.<ext>`` with ext in ``SUPPORTED_EXTENSIONS``; TIFF/PNG screenshots are not
            a landing format (2D, and their DPI is not a physical pixel size).
        axis_order: for exporters whose axes are not (lateral, depth, sweep): three letters, a
            permutation of ``L`` (lateral), ``D`` (depth from the skin) and ``S`` (sweep), naming
            the canonical axis of file axes (i, j, k) in that order. Default ``"LDS"``; ``"LSD"``
            means the file's j axis is the sweep and its k axis the depth.
        spacing: mm along canonical (lateral, depth, sweep); replaces the header's spacing
            entirely (``spacing_mm`` in scan.json, for files with none or a wrong one).

    Returns:
        Volume in (lateral, depth, sweep) order. Samples keep the file's dtype (label maps stay
        integer; intensities are not rescaled, except DICOM RescaleSlope/Intercept and NIfTI
        scl_slope/inter, which give float32). Colour (RGB, RGBA, palette) becomes grey luminance
        (BT.601) in the samples' dtype. A 2D image becomes one frame, shape (I, J, 1) with
        ``metadata["frames"] == 1``, for the intake to refuse as too small; an axis of one
        sample gets a placeholder spacing of 1 mm. ``origin``/``direction`` in LPS: NIfTI
        sform (else qform) converted from RAS, NRRD space origin/directions, MetaImage
        Offset/TransformMatrix, DICOM ImagePositionPatient/ImageOrientationPatient.
        ``metadata`` holds PHI-free facts only:
        format, dtype on disk, source_shape (file axis order, components last), frames, colour,
        and for DICOM Modality, Manufacturer, ManufacturerModelName, PhotometricInterpretation
        and ``burned_in`` (``"NO"``, ``"masked"``: zeroed outside the ultrasound regions, or
        ``"unmasked"``), for the intake to accept or refuse.

    Raises:
        VolumeReadError: empty, truncated or corrupt file; unsupported extension; a 4D image;
            a header declaring more than ``MAX_VOXELS`` or ``MAX_VOLUME_BYTES``, more data
            than the file holds or ``RAW_SLACK_BYTES`` less (compressed streams, gzip, zlib
            and bzip2, are measured by bounded streaming decompression), refused before the
            array is allocated; deflated DICOM; a detached header whose data file is not one
            plain file name beside it; no physical spacing and no ``spacing`` override.
        ValueError: a malformed ``axis_order`` or ``spacing`` argument (a caller bug).
    """
    if is_remote(location := as_location(path)):  # an artifact on object storage
        with local_copy(location) as local:
            return read_volume(local, axis_order=axis_order, spacing=spacing)
    path = Path(path)
    permutation = _permutation(axis_order)
    override = None if spacing is None else _checked_override(spacing)
    fmt = volume_extension(path)
    if fmt is None:
        raise VolumeReadError(
            f"{path.name} is not a landing format: export the scan as NIfTI (.nii, .nii.gz), NRRD"
            " (.nrrd, .nhdr), MetaImage (.mha, .mhd) or DICOM (.dcm); screenshots (TIFF, PNG,"
            " JPEG) are 2D and carry no physical voxel size"
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise VolumeReadError(f"{path.name} does not exist") from None
    if size == 0:
        raise VolumeReadError(
            f"{path.name} is empty (0 bytes): the export failed or was interrupted; send it again"
        )

    decoded = _DECODERS[fmt](path)
    array, file_spacing = _three_axes(path.name, decoded)
    array = np.transpose(array, permutation)
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))  # torch: native only
    metadata = {
        "format": fmt,
        "dtype": str(decoded.array.dtype),
        "source_shape": [int(n) for n in decoded.array.shape],
        "frames": int(array.shape[2]),
        "colour": decoded.channels == "colour",
        **decoded.metadata,
    }
    canonical = [file_spacing[axis] for axis in permutation]
    origin, direction = canonical_geometry(decoded.origin, decoded.directions, permutation)
    volume = Volume(
        array,
        override or _header_spacing(path.name, canonical, array.shape),
        metadata,
        origin=origin,
        direction=direction,
    )
    log.debug("read %s: %s shape %s spacing %s", path.name, fmt, volume.shape, volume.spacing)
    return volume


def read_label_map(path: str) -> np.ndarray:
    """A stored segmentation (``segmentations.path``) as integer layer labels."""
    return read_volume(as_location(path)).array.astype(np.int64)
