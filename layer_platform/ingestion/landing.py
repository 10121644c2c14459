"""The landing-zone contract: one folder per scan, ``scan.json`` written last.

This module only *looks* at the landing zone (cheap: names, sizes, mtimes, one small JSON
file); reading the volumes is the intake's job. A sensor can therefore list thousands of
folders per tick without reading any image bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from layer_platform.errors import ScanError
from layer_platform.ingestion.guard import guarded
from layer_platform.ingestion.policy import IntakePolicy
from layer_platform.ingestion.scan_json import (
    MAX_SCAN_JSON_BYTES,
    SIDES,
    ScanMeta,
    is_utf8_text,
    parse_scan_json,
)
from layer_platform.io import Volume, read_volume, volume_extension

__all__ = [
    "SCAN_JSON",
    "SIDES",
    "LandedFolder",
    "LoadedScan",
    "ScanMeta",
    "discover",
    "display_name",
    "incomplete_folders",
    "load_scan",
    "parse_scan_json",
]

SCAN_JSON = "scan.json"
ROLES: tuple[str, ...] = ("bmode", "swe", "layers")


@dataclass(frozen=True)
class LandedFolder:
    """A complete scan folder (``scan.json`` present) and its cheap change fingerprint."""

    name: str
    path: Path
    fingerprint: str


def display_name(name: str) -> str:
    """A landing name as storable text: a name that is not UTF-8 gets ``\\xNN`` escapes.

    On Linux a file name is bytes; Python hands undecodable bytes over as lone surrogates, which
    no UTF-8 consumer (DuckDB, logs, a terminal) accepts. The escaped form is stable, so the
    folder is recognised again on the next refresh.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _fingerprint(folder: Path) -> str:
    """Names, sizes and mtimes of the folder's entries: changes when an exporter rewrites a file."""
    digest = hashlib.sha256()
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            stat = entry.stat(follow_symlinks=False)
            name = os.fsencode(entry.name)  # raw bytes: any name, UTF-8 or not
            digest.update(name + f"\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def discover(landing: Path) -> list[LandedFolder]:
    """List complete scan folders (those holding ``scan.json``), sorted by name.

    Incomplete folders (an export still in progress) are skipped silently: they are picked up
    once their ``scan.json`` appears. Hidden folders are ignored.
    """
    if not landing.is_dir():
        return []
    found = []
    with os.scandir(landing) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=True):
                continue
            path = Path(entry.path)
            if os.path.lexists(path / SCAN_JSON):
                found.append(LandedFolder(display_name(entry.name), path, _fingerprint(path)))
    return sorted(found, key=lambda f: f.name)


def incomplete_folders(landing: Path) -> list[str]:
    """Folders without ``scan.json``: exports in progress, or abandoned ones worth a look."""
    if not landing.is_dir():
        return []
    return sorted(
        display_name(entry.name)
        for entry in os.scandir(landing)
        if entry.is_dir()
        and not entry.name.startswith(".")
        and not os.path.lexists(os.path.join(entry.path, SCAN_JSON))
    )


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve(strict=True).relative_to(root.resolve(strict=True))
    except (ValueError, OSError):
        return False
    return True


def check_safe(path: Path, landing: Path) -> None:
    """Refuse symlinks and anything that resolves outside the landing zone."""
    name = display_name(path.name)
    if path.is_symlink():
        raise ScanError(f"{name} is a symbolic link; the landing zone accepts plain files only")
    if not _inside(path, landing):
        raise ScanError(f"{name} resolves outside the landing zone")


def check_plain_file(path: Path, landing: Path) -> None:
    """``check_safe``, and a regular file: a directory or a FIFO would fail or block a reader."""
    check_safe(path, landing)
    if not stat.S_ISREG(path.lstat().st_mode):
        raise ScanError(f"{display_name(path.name)} is not a regular file (a directory?)")


def read_scan_meta(folder: Path, landing: Path, policy: IntakePolicy | None = None) -> ScanMeta:
    """Read and validate the folder's ``scan.json`` after the safety checks.

    At most ``MAX_SCAN_JSON_BYTES`` + 1 bytes are read: a larger file is refused unparsed.
    A folder whose name is not UTF-8 is refused (once its scan_id is known, to name the scan):
    the name is stored in the warehouse and read back to find the scan's files.
    """
    check_safe(folder, landing)
    scan_json = folder / SCAN_JSON
    check_plain_file(scan_json, landing)
    try:
        with scan_json.open("rb") as handle:
            raw = handle.read(MAX_SCAN_JSON_BYTES + 1)
    except OSError as exc:
        raise ScanError(f"scan.json cannot be read ({exc.strerror})") from None
    meta = parse_scan_json(raw, policy)
    if not is_utf8_text(folder.name):
        raise ScanError(
            f"the folder name '{display_name(folder.name)}' is not valid UTF-8 (shown with \\x"
            " escapes): rename the folder, e.g. to the scan_id",
            scan_id=meta.scan_id,
        )
    return meta


def locate_volumes(folder: Path, landing: Path) -> dict[str, Path]:
    """Find ``bmode.<ext>`` (required), ``swe.<ext>`` and ``layers.<ext>`` in a scan folder.

    Raises:
        ScanError: no B-mode, two files for one role, or an unsafe file.
    """
    found: dict[str, list[Path]] = {role: [] for role in ROLES}
    for path in sorted(folder.iterdir()):
        ext = volume_extension(path)
        stem = path.name[: -(len(ext) + 1)] if ext else None
        if stem in found:
            check_plain_file(path, landing)
            found[stem].append(path)
    for role, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise ScanError(f"more than one {role} file ({names}): keep exactly one")
    if not found["bmode"]:
        raise ScanError("no bmode.<ext> file (nii, nii.gz, nrrd, mha or dcm) in the scan folder")
    return {role: paths[0] for role, paths in found.items() if paths}


@dataclass(frozen=True)
class LoadedScan:
    """A scan folder read from disk: its validated ``scan.json``, file paths and volumes."""

    meta: ScanMeta
    paths: dict[str, Path]
    volumes: dict[str, Volume]


def load_scan(folder: Path, landing: Path, policy: IntakePolicy | None = None) -> LoadedScan:
    """Read a scan folder's volumes with the exporter overrides from its ``scan.json``.

    Intake and preprocessing both read scans through here, so they can never disagree on axes
    or spacing. Errors name the scan (and the caller adds the folder); an unexpected exception
    becomes a ``ScanError`` naming the step and the exception's class (:func:`guarded`).
    """
    with guarded("reading scan.json"):
        meta = read_scan_meta(folder, landing, policy)
    try:
        with guarded("locating the volume files"):
            paths = locate_volumes(folder, landing)
        volumes = {}
        for role, path in paths.items():
            with guarded(f"reading the {role} volume"):
                volumes[role] = read_volume(
                    path, axis_order=meta.axis_order, spacing=meta.spacing_mm
                )
    except ScanError as exc:
        raise exc.located(scan_id=meta.scan_id) from None
    return LoadedScan(meta, paths, volumes)
