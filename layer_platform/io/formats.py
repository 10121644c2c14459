"""What every format decoder shares: the extension table, the decoded intermediate, size guards.

Decoders (NIfTI, NRRD, MetaImage, DICOM) only turn a file into a :class:`Decoded` in the file's
own index order; ``readers.read_volume`` then applies one policy for colour, frames, 2D and 4D
images, the axis order and the spacing, so those rules cannot drift apart between formats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from layer_platform.errors import VolumeReadError

#: Landing formats, longest suffix first so ``bmode.nii.gz`` is not taken for a ``.gz`` file.
#: TIFF, PNG and JPEG are deliberately absent: they are 2D screenshots with no physical spacing.
SUPPORTED_EXTENSIONS: tuple[str, ...] = ("nii.gz", "nii", "nrrd", "nhdr", "mha", "mhd", "dcm")

#: Largest voxel buffer a reader will allocate. A corrupt header can declare terabytes; refusing
#: before reading keeps one bad file from taking down a worker shared with the whole cohort.
MAX_VOLUME_BYTES: int = 2**31

#: How a trailing per-voxel component axis is to be understood.
Channels = Literal["colour", "frames"]


def volume_extension(path: Path | str) -> str | None:
    """The landing extension of a file name (``"nii.gz"``, ``"nrrd"``, ...), or None if not one."""
    name = Path(path).name.lower()
    return next((ext for ext in SUPPORTED_EXTENSIONS if name.endswith("." + ext)), None)


@dataclass(frozen=True)
class Decoded:
    """A file's pixels in the file's own index order, before any platform policy is applied.

    Args:
        array: spatial axes (i, j[, k]) first; when ``channels`` is set, a last component axis.
        spacing: mm per spatial axis, in file order; None where the header has no spacing.
        channels: ``"colour"`` (RGB/RGBA samples) or ``"frames"`` (a 2D image whose components
            are ultrasound frames, as PLUS writes them), or None for scalar pixels.
        metadata: PHI-free facts from the header, merged into ``Volume.metadata``.
    """

    array: np.ndarray
    spacing: tuple[float | None, ...]
    channels: Channels | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def check_declared_size(
    name: str, shape: tuple[int, ...], itemsize: int, available_bytes: int | None
) -> None:
    """Refuse a header whose declared voxel buffer is empty, absurdly large, or not in the file.

    Called before any pixel is read. ``available_bytes`` is the size of the stored pixel data for
    uncompressed files (None when compressed: the real size is only known by decompressing).
    """
    declared = math.prod(shape) * itemsize
    if declared == 0:
        raise VolumeReadError(f"{name} declares an image with no voxels (shape {tuple(shape)})")
    if declared > MAX_VOLUME_BYTES:
        raise VolumeReadError(
            f"{name} declares {tuple(shape)} voxels ({declared / 2**30:.1f} GiB), more than the"
            f" {MAX_VOLUME_BYTES / 2**30:.0f} GiB one scan may hold: the header is corrupt or the"
            " file is not a single scan"
        )
    if available_bytes is not None and available_bytes < declared:
        raise VolumeReadError(
            f"{name} is truncated: its header promises {declared} bytes of image data but the file"
            f" holds {max(available_bytes, 0)}; the export or copy was interrupted, send it again"
        )


def damaged(name: str, kind: str, detail: str) -> VolumeReadError:
    """The error for a file a library could not parse; ``detail`` must carry no header values."""
    return VolumeReadError(
        f"{name} is damaged or is not a valid {kind} file ({detail}); export the scan again"
    )


def compressed_ends_early(name: str) -> VolumeReadError:
    """The error for a gzip stream that stops mid-way: the classic interrupted copy."""
    return VolumeReadError(
        f"{name} is truncated: the compressed data ends early (the export or copy was"
        " interrupted); send the file again"
    )
