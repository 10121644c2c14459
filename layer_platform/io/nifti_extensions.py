"""NIfTI header extensions, walked before nibabel reads them.

nibabel reads each extension with ``read(esize - 8)``, trusting the 4-byte size in the file: a
damaged size makes it allocate up to 2 GiB before noticing the file is short (found by
fuzzing). Here the extensions must fit between the header and ``vox_offset``, which itself must
lie within ``MAX_NIFTI_HEADER_BYTES``; only then does nibabel see the file.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

from layer_platform.errors import VolumeReadError
from layer_platform.io.formats import damaged

#: Largest header + extensions accepted (vox_offset): extensions hold XML or a DICOM header,
#: kilobytes to a few megabytes.
MAX_NIFTI_HEADER_BYTES = 1 << 24

#: sizeof_hdr → (offset and struct code of vox_offset, bytes before the extension flag).
_LAYOUTS: dict[int, tuple[int, str, int]] = {348: (108, "f", 348), 540: (168, "q", 540)}


def _layout(head: bytes) -> tuple[str, int] | None:
    """(byte order, sizeof_hdr) of a NIfTI-1 or NIfTI-2 header, or None if not NIfTI."""
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size in _LAYOUTS:
            return order, size
    return None


def check_nifti_extensions(path: Path) -> None:
    """Refuse a NIfTI whose ``vox_offset`` or extension sizes point past the header region.

    Reads at most ``MAX_NIFTI_HEADER_BYTES`` (decompressed, for ``.nii.gz``). A file that is
    not NIfTI at all is left to nibabel, which refuses it without allocating.
    """
    name = path.name
    opener = gzip.open if name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(544)
            found = _layout(head) if len(head) >= 4 else None
            if found is None:
                return
            order, size = found
            offset_at, code, header_end = _LAYOUTS[size]
            if len(head) < header_end + 4 or head[header_end : header_end + 1] == b"\x00":
                return  # no extensions: nibabel reads the fixed header only
            vox_offset = struct.unpack_from(order + code, head, offset_at)[0]
            # nibabel reads extensions to the end of the file when vox_offset precedes them
            if not header_end + 4 <= vox_offset <= MAX_NIFTI_HEADER_BYTES:
                raise damaged(name, "NIfTI", "its vox_offset lies outside the header region")
            region = head[header_end + 4 :] + handle.read(max(int(vox_offset) - len(head), 0))
    except (OSError, EOFError, struct.error):
        return  # a damaged stream: nibabel's read and the compressed-length check report it
    _walk(name, region[: max(int(vox_offset) - header_end - 4, 0)], order)


def _walk(name: str, region: bytes, order: str) -> None:
    """Every extension's size must be a positive multiple of 8 inside ``region``."""
    position = 0
    while len(region) - position >= 16:
        esize = struct.unpack_from(order + "i", region, position)[0]
        if esize < 16 or position + esize > len(region):
            raise VolumeReadError(
                f"{name} is damaged: a header extension claims more bytes than the header holds;"
                " export the scan again"
            )
        position += esize
