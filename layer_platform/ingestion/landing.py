"""The landing-zone contract: one folder per scan, ``scan.json`` written last.

This module only *looks* at the landing zone (cheap: names, sizes, mtimes, one small JSON
file); reading the volumes is the intake's job. A sensor can therefore list thousands of
folders per tick without reading any image bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layer_platform.errors import ScanError
from layer_platform.io import Volume, read_volume, volume_extension
from layer_platform.labels import PAIN_LABELS

SCAN_JSON = "scan.json"
ROLES: tuple[str, ...] = ("bmode", "swe", "layers")

SIDES: tuple[str, ...] = ("left", "right")
AXIS_LETTERS = frozenset("LDS")

#: A scan_id becomes a Dagster partition key, a file name and a SQL value: keep it plain.
SCAN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

#: scan.json keys that look like patient identifiers: dropped (never stored), logged by name only.
PHI_KEYS = frozenset(
    {
        "patient",
        "patient_name",
        "patientname",
        "name",
        "patient_id",
        "patientid",
        "mrn",
        "birth_date",
        "birthdate",
        "date_of_birth",
        "dob",
        "address",
        "phone",
        "email",
        "ssn",
        "accession_number",
    }
)

_KNOWN_KEYS = frozenset(
    {
        "scan_id",
        "subject_id",
        "label",
        "side",
        "acquired_at",
        "site",
        "device",
        "axis_order",
        "spacing_mm",
    }
)


@dataclass(frozen=True)
class ScanMeta:
    """What ``scan.json`` says about a scan, validated; PHI-looking keys already dropped."""

    scan_id: str
    subject_id: str
    label: str | None
    side: str | None = None
    acquired_at: dt.date | None = None
    site: str | None = None
    device: str | None = None
    axis_order: str | None = None
    spacing_mm: tuple[float, float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    dropped_phi_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class LandedFolder:
    """A complete scan folder (``scan.json`` present) and its cheap change fingerprint."""

    name: str
    path: Path
    fingerprint: str


def _require_str(data: dict[str, Any], key: str, *, optional: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if optional:
            return None
        raise ScanError(f"scan.json is missing the required key {key!r}")
    if not isinstance(value, str) or not value.strip():
        raise ScanError(
            f"scan.json key {key!r} must be a non-empty string, got {type(value).__name__}"
        )
    if not is_utf8_text(value):  # JSON can spell a lone surrogate ("\udcff"): not storable text
        raise ScanError(
            f"scan.json key {key!r} holds an invalid Unicode escape"
            f" ({value.encode('utf-8', 'backslashreplace').decode()!r})"
        )
    return value.strip()


def _parse_spacing(value: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
    )
    if not ok:
        raise ScanError(
            f"scan.json 'spacing_mm' must be three positive numbers in mm, got {value!r}"
        )
    return (float(value[0]), float(value[1]), float(value[2]))


def _parse_axis_order(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or sorted(value.upper()) != sorted(AXIS_LETTERS):
        raise ScanError(
            "scan.json 'axis_order' must name the canonical axis of file axes (i, j, k) with the"
            f" letters L (lateral), D (depth), S (sweep), e.g. 'LSD'; got {value!r}"
        )
    return value.upper()


def parse_scan_json(text: str | bytes) -> ScanMeta:
    """Validate a ``scan.json`` document against the landing contract.

    Raises:
        ScanError: malformed JSON, wrong types, unknown label or side, unsafe scan_id.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScanError(f"scan.json is not valid JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ScanError(f"scan.json must hold a JSON object, got {type(data).__name__}")

    scan_id = _require_str(data, "scan_id", optional=False)
    assert scan_id is not None
    if not SCAN_ID_PATTERN.match(scan_id):
        raise ScanError(
            f"scan_id {scan_id!r} is not allowed: use letters, digits, '.', '_' or '-' (no path"
            " separators), at most 128 characters, starting with a letter or digit"
        )
    try:
        return _scan_meta(data, scan_id)
    except ScanError as exc:  # the scan_id is safe and known: let the error name the scan
        raise exc.located(scan_id=scan_id) from None


def _scan_meta(data: dict[str, Any], scan_id: str) -> ScanMeta:
    """The rest of ``scan.json`` once its ``scan_id`` is known to be safe."""
    subject_id = _require_str(data, "subject_id", optional=False)
    assert subject_id is not None

    if "label" not in data:
        raise ScanError("scan.json is missing the required key 'label' (MP, control or null)")
    label = data["label"]
    if label is not None and label not in PAIN_LABELS:
        raise ScanError(f"unknown label {label!r}: expected 'MP', 'control' or null")

    side = _require_str(data, "side", optional=True)
    if side is not None and side not in SIDES:
        raise ScanError(f"unknown side {side!r}: expected 'left' or 'right'")

    acquired_raw = _require_str(data, "acquired_at", optional=True)
    acquired_at = None
    if acquired_raw is not None:
        try:
            acquired_at = dt.date.fromisoformat(acquired_raw)
        except ValueError:
            raise ScanError(f"acquired_at {acquired_raw!r} is not a YYYY-MM-DD date") from None

    dropped = tuple(sorted(k for k in data if k.lower() in PHI_KEYS))
    extra = {k: v for k, v in data.items() if k not in _KNOWN_KEYS and k not in dropped}
    return ScanMeta(
        scan_id=scan_id,
        subject_id=subject_id,
        label=label,
        side=side,
        acquired_at=acquired_at,
        site=_require_str(data, "site", optional=True),
        device=_require_str(data, "device", optional=True),
        axis_order=_parse_axis_order(data.get("axis_order")),
        spacing_mm=_parse_spacing(data.get("spacing_mm")),
        extra=extra,
        dropped_phi_keys=dropped,
    )


def display_name(name: str) -> str:
    """A landing name as storable text: a name that is not UTF-8 gets ``\\xNN`` escapes.

    On Linux a file name is bytes; Python hands undecodable bytes over as lone surrogates, which
    no UTF-8 consumer (DuckDB, logs, a terminal) accepts. The escaped form is stable, so the
    folder is recognised again on the next refresh.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def is_utf8_text(text: str) -> bool:
    """False for a name with undecodable bytes, or a string with a lone surrogate escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def read_scan_meta(folder: Path, landing: Path) -> ScanMeta:
    """Read and validate the folder's ``scan.json`` after the safety checks.

    A folder whose name is not UTF-8 is refused (once its scan_id is known, to name the scan):
    the name is stored in the warehouse and read back to find the scan's files.
    """
    check_safe(folder, landing)
    scan_json = folder / SCAN_JSON
    check_safe(scan_json, landing)
    try:
        raw = scan_json.read_bytes()
    except OSError as exc:
        raise ScanError(f"scan.json cannot be read ({exc.strerror})") from None
    meta = parse_scan_json(raw)
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
            check_safe(path, landing)
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


def load_scan(folder: Path, landing: Path) -> LoadedScan:
    """Read a scan folder's volumes with the exporter overrides from its ``scan.json``.

    Intake and preprocessing both read scans through here, so they can never disagree on axes
    or spacing. Errors name the scan (and the caller adds the folder).
    """
    meta = read_scan_meta(folder, landing)
    try:
        paths = locate_volumes(folder, landing)
        volumes = {
            role: read_volume(path, axis_order=meta.axis_order, spacing=meta.spacing_mm)
            for role, path in paths.items()
        }
    except ScanError as exc:
        raise exc.located(scan_id=meta.scan_id) from None
    return LoadedScan(meta, paths, volumes)
