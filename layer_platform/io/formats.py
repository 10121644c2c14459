"""What every format decoder shares: the extension table, the decoded intermediate, size guards.

Decoders (NIfTI, NRRD, MetaImage, DICOM) only turn a file into a :class:`Decoded` in the file's
own index order; ``readers.read_volume`` then applies one policy for colour, frames, 2D and 4D
images, the axis order and the spacing, so those rules cannot drift apart between formats.
"""

from __future__ import annotations

import bz2
import math
import re
import zlib
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

#: Largest voxel count a reader will accept (components included): 268 M voxels, so even the
#: float64 copy a resampler may make stays within ``MAX_VOLUME_BYTES``. The GPU working grid is
#: 2.2 M voxels; the largest real file in ../shared (PLUS NwirePhantom) 49 M.
MAX_VOXELS: int = MAX_VOLUME_BYTES // 8

#: Compressed input consumed per step while checking a compressed stream's length.
_STREAM_CHUNK = 1 << 20

#: Stored bytes tolerated beyond what a header declares (DICOM pads odd lengths, some writers
#: align). More is refused: pynrrd reads a raw file to its end, whatever the header says.
RAW_SLACK_BYTES: int = 1 << 16

#: A detached data file's name: one plain file name. No ``%`` (MetaIO and NRRD file-name
#: patterns), no whitespace (pattern ranges, ``LIST`` file lists), no separators.
_PLAIN_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
#: Names MetaIO and NRRD give a meaning of their own: never a file name.
_RESERVED_DATA_FILES = frozenset({"LIST", "LOCAL"})

#: Compressed stream kinds measured by ``check_compressed_length`` (gzip is read as zlib).
Codec = Literal["zlib", "bzip2"]

#: How a trailing per-voxel component axis is to be understood.
Channels = Literal["colour", "frames"]


def volume_extension(path: Path | str) -> str | None:
    """The landing extension of a file name (``"nii.gz"``, ``"nrrd"``, ...), or None if not one."""
    name = (Path(path).name if isinstance(path, str) else path.name).lower()
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
        origin: LPS mm of the centre of voxel (0, 0, 0), or None if the header states none.
        directions: per spatial axis in file order, its LPS unit vector (3 values), or None
            where the header states none (see ``layer_platform.io.volume`` for the convention).
    """

    array: np.ndarray
    spacing: tuple[float | None, ...]
    channels: Channels | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: tuple[float, float, float] | None = None
    directions: tuple[tuple[float, float, float] | None, ...] = ()


def check_declared_size(
    name: str, shape: tuple[int, ...], itemsize: int, available_bytes: int | None
) -> None:
    """Refuse a header whose declared voxel buffer is empty, negative, too big, or not in the file.

    Too big: more than ``MAX_VOXELS`` voxels (components included) or ``MAX_VOLUME_BYTES``.

    Called before any pixel is read. ``available_bytes`` is the size of the stored pixel data for
    uncompressed files (None when compressed: the real size is only known by decompressing).
    """
    voxels = math.prod(shape)
    declared = voxels * itemsize
    if any(n < 0 for n in shape):
        raise VolumeReadError(f"{name} declares a negative image size {tuple(shape)}")
    if declared == 0:
        raise VolumeReadError(f"{name} declares an image with no voxels (shape {tuple(shape)})")
    if voxels > MAX_VOXELS:
        raise VolumeReadError(
            f"{name} declares {tuple(shape)} = {voxels:,} voxels, more than the {MAX_VOXELS:,}"
            f" one scan may hold ({declared / 2**30:.1f} GiB of samples): the header is corrupt or"
            " the file is not a single scan"
        )
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
    if available_bytes is not None and available_bytes > declared + RAW_SLACK_BYTES:
        raise VolumeReadError(
            f"{name} holds {available_bytes - declared} more bytes of image data than its header"
            " declares: the header is wrong or the file is not a single scan; export it again"
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


def _decompressor(codec: Codec) -> Any:
    """A fresh incremental decoder; both kinds take ``max_length`` and report ``eof``."""
    if codec == "bzip2":
        return bz2.BZ2Decompressor()
    return zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header, auto-detected


def _inflate(decoder: Any, chunk: bytes, codec: Codec) -> tuple[int, bytes, bool]:
    """One bounded step: (bytes produced, input left over, output still buffered inside)."""
    produced = len(decoder.decompress(chunk, _STREAM_CHUNK))
    if codec == "bzip2":  # BZ2Decompressor keeps unconsumed input itself
        return produced, b"", not decoder.needs_input and not decoder.eof
    return produced, decoder.unconsumed_tail, False


def check_compressed_length(
    name: str,
    path: Path,
    needed: int | None,
    *,
    offset: int = 0,
    exact: bool = False,
    codec: Codec = "zlib",
) -> None:
    """Refuse a compressed stream that cannot produce the ``needed`` bytes its header promises.

    Decompresses from ``offset`` in bounded steps (1 MiB in, at most 1 MiB out), keeping
    nothing, and stops as soon as ``needed`` bytes came out: a tiny file that declares a
    gigabyte is refused after reading a few bytes, before any voxel buffer is allocated (nibabel
    allocates the declared size first; SimpleITK fills a short stream's remainder silently).
    With ``exact`` the stream must also end there: a decompression bomb behind a small header is
    refused after ``needed`` + 1 MiB, for readers that inflate whatever the stream holds
    (pynrrd). With ``needed=None`` the whole stream must decompress and end properly.
    Concatenated gzip (or bzip2) members are followed. Costs one extra decompression of a good
    file. ``codec`` is ``"zlib"`` (zlib or gzip) or ``"bzip2"`` (NRRD's ``bzip2`` encoding).

    Raises:
        VolumeReadError: the stream ends early ("truncated"), holds more than ``needed`` bytes
            (with ``exact``), or is corrupt.
    """
    produced, open_member = 0, False

    def more() -> bool:
        return needed is None or produced < needed or (exact and produced <= needed)

    with path.open("rb") as handle:
        handle.seek(offset)
        decoder = _decompressor(codec)
        try:
            while more() and (chunk := handle.read(_STREAM_CHUNK)):
                buffered = True
                while (chunk or buffered) and more():
                    step, chunk, buffered = _inflate(decoder, chunk, codec)  # output bounded
                    produced, open_member = produced + step, True
                    if decoder.eof:  # a member ended: the next one (if any) follows
                        chunk, open_member, buffered = decoder.unused_data, False, False
                        decoder = _decompressor(codec)
                    elif step == 0 and not chunk:
                        break
        except (zlib.error, OSError, EOFError, ValueError):  # not such a stream, or corrupt
            raise damaged(name, "compressed", f"its {codec} stream is corrupt") from None
    if exact and needed is not None and produced > needed:
        raise VolumeReadError(
            f"{name} holds more compressed data than its header declares ({needed} bytes): the"
            " header is wrong or the file is a decompression bomb; export the scan again"
        )
    if (needed is not None and produced < needed) or ((needed is None or exact) and open_member):
        raise compressed_ends_early(name)


def companion_file(name: str, header: Path, data_file: str, kind: str) -> Path:
    """The detached voxel-data file a header names, which must sit beside it as a plain file.

    A header is landing input too: ``ElementDataFile = ../../other/bmode.raw`` or an absolute
    path would make the reader fetch bytes from outside the scan folder (another scan's, or
    anything on the host), and a symbolic link would do the same behind a harmless name.

    Raises:
        VolumeReadError: a path instead of a file name, a symbolic link, or a missing file.
    """
    if not _PLAIN_FILE_NAME.match(data_file) or data_file in _RESERVED_DATA_FILES:
        raise VolumeReadError(  # the header's value is not quoted: it is input, maybe anything
            f"{name} points its voxel data elsewhere than one plain file: a {kind} header may only"
            " name a data file beside it in the scan folder (no directories, no absolute paths,"
            " no file lists or name patterns)"
        )
    source = header.parent / data_file
    if source.is_symlink():
        raise VolumeReadError(
            f"{name}: its data file is a symbolic link; the landing zone accepts plain files only"
        )
    if not source.is_file():
        raise damaged(name, kind, "its data file is missing or not a plain file")
    return source
