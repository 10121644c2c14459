"""Intake: turn landing folders into validated manifest rows or quarantine entries.

Every volume is read once here, so a scan that reaches a Dagster partition is known to be
readable, finite, 3D and aligned; problems are reported as ``ScanError`` naming the folder, and
the scan is quarantined rather than failing the cohort.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layer_platform.errors import ScanError
from layer_platform.ingestion.guard import guarded, unexpected
from layer_platform.ingestion.landing import LandedFolder, load_scan
from layer_platform.ingestion.policy import IntakePolicy
from layer_platform.io import Volume, volume_extension
from layer_platform.labels import MAX_LABEL, Layer
from layer_platform.timestamps import utc_now

log = logging.getLogger(__name__)

#: Smallest accepted B-mode (lateral, depth, sweep): a 2D image or a 1×1×1 volume is refused.
MIN_SHAPE: tuple[int, int, int] = (4, 8, 2)
#: SWE is acquired on a coarse grid; it only has to be a real 3D volume.
MIN_SWE_SHAPE: tuple[int, int, int] = (2, 2, 2)
#: Relative mismatch of physical extent tolerated between SWE and B-mode fields of view.
EXTENT_TOLERANCE = 0.05


@dataclass(frozen=True)
class ScanRecord:
    """One validated scan: a row of the ``scans`` table (the cohort manifest)."""

    scan_id: str
    subject_id: str
    label: str | None
    side: str | None
    acquired_at: dt.date | None
    site: str | None
    device: str | None
    folder: str
    format: str
    shape_lateral: int
    shape_depth: int
    shape_sweep: int
    spacing_lateral_mm: float
    spacing_depth_mm: float
    spacing_sweep_mm: float
    dtype: str
    has_swe: bool
    has_reference_layers: bool
    content_hash: str
    fingerprint: str
    metadata: str
    ingested_at: dt.datetime

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QuarantineEntry:
    """One refused landing folder: a row of the ``quarantine`` table."""

    folder: str
    scan_id: str | None
    reason: str
    detected_at: dt.datetime
    fingerprint: str = ""

    def as_row(self) -> dict[str, Any]:
        """The ``quarantine`` table row (the fingerprint lives in ``landing_index``)."""
        return {
            "folder": self.folder,
            "scan_id": self.scan_id,
            "reason": self.reason,
            "detected_at": self.detected_at,
        }


@dataclass(frozen=True)
class IntakeResult:
    accepted: list[ScanRecord]
    quarantined: list[QuarantineEntry]


def files_hash(paths: Iterable[Path]) -> str:
    """The content hash a scan is registered with: its volume files and ``scan.json``."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _check_shape(role: str, volume: Volume, minimum: tuple[int, int, int]) -> None:
    if any(n < m for n, m in zip(volume.shape, minimum, strict=True)):
        raise ScanError(
            f"{role} has shape {volume.shape} (lateral, depth, sweep); a volume needs at least"
            f" {minimum} voxels — a 2D image or a single frame is not a 3D scan"
        )


def _check_bmode(volume: Volume) -> None:
    _check_shape("bmode", volume, MIN_SHAPE)
    data = volume.array
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise ScanError(f"bmode has {bad} NaN/inf voxels; B-mode intensities must be finite")
    if not np.any(data):
        raise ScanError("bmode is all zeros: no image content")


def _check_aligned(role: str, volume: Volume, bmode: Volume) -> None:
    for axis, (got, ref) in enumerate(zip(volume.extent_mm, bmode.extent_mm, strict=True)):
        if abs(got - ref) > EXTENT_TOLERANCE * ref:
            raise ScanError(
                f"{role} field of view {tuple(round(e, 2) for e in volume.extent_mm)} mm does not"
                f" match the B-mode's {tuple(round(e, 2) for e in bmode.extent_mm)} mm (axis"
                f" {axis}); it cannot be aligned to the B-mode grid"
            )


def _check_swe(volume: Volume, bmode: Volume) -> None:
    _check_shape("swe", volume, MIN_SWE_SHAPE)
    _check_aligned("swe", volume, bmode)
    data = volume.array
    if np.isinf(data).any():
        raise ScanError("swe has inf values; use 0 or NaN for 'no signal'")
    finite = data[np.isfinite(data)]
    if finite.size and finite.min() < 0:
        raise ScanError(f"swe has negative stiffness ({float(finite.min()):.3g} kPa)")


def _check_layers(volume: Volume, bmode: Volume) -> None:
    data = volume.array
    is_integral = np.issubdtype(data.dtype, np.integer) or (
        np.isfinite(data).all() and np.array_equal(data, np.round(data))
    )
    if not is_integral:
        raise ScanError("layers must hold integer labels 0..6")
    if volume.shape != bmode.shape:
        raise ScanError(
            f"layers shape {volume.shape} differs from the B-mode's {bmode.shape}: an annotation"
            " must be on the B-mode grid"
        )
    lo, hi = int(data.min()), int(data.max())
    if lo < 0 or hi > MAX_LABEL:
        raise ScanError(f"layers has labels outside 0..{MAX_LABEL} (found {lo}..{hi})")
    _check_anatomy_direction(data.astype(np.int16))


def _check_anatomy_direction(labels: np.ndarray) -> None:
    """Dermis must lie above muscle along depth; an upside-down export is refused, not flipped."""
    depth_index = np.arange(labels.shape[1])[None, :, None]
    present = [layer for layer in (Layer.DERMIS, Layer.MUSCLE) if (labels == layer).any()]
    if len(present) < 2:
        return
    dermis = float(np.broadcast_to(depth_index, labels.shape)[labels == Layer.DERMIS].mean())
    muscle = float(np.broadcast_to(depth_index, labels.shape)[labels == Layer.MUSCLE].mean())
    if dermis > muscle:
        raise ScanError(
            "layers anatomy is upside down (dermis lies deeper than muscle): depth must run from"
            " the skin (j = 0); fix the export or set 'axis_order' in scan.json"
        )


def _check_burned_in(volumes: Mapping[str, Volume], policy: IntakePolicy) -> None:
    """DICOM pixels may carry burned-in text: refused unless masked and the site allows it."""
    for role, volume in volumes.items():
        burned_in = volume.metadata.get("burned_in", "NO")
        if burned_in == "NO" or (burned_in == "masked" and policy.mask_burned_in):
            continue
        raise ScanError(
            f"{role} is DICOM whose BurnedInAnnotation is not NO: its pixels may show patient"
            " text. Export without annotations, or set LAYER_DICOM_BURNED_IN=mask to zero"
            " everything outside the ultrasound regions"
            + ("" if burned_in == "masked" else " (this file has no usable regions to keep)")
        )


def inspect_folder(
    folder: LandedFolder, landing: Path, policy: IntakePolicy | None = None
) -> ScanRecord:
    """Validate one landing folder completely; raise ``ScanError`` naming the folder.

    Any exception, expected or not, becomes a ``ScanError`` naming the step that failed.
    """
    policy = policy or IntakePolicy()
    try:
        scan = load_scan(folder.path, landing, policy)
    except ScanError as exc:
        raise exc.located(folder=folder.name) from None
    meta, paths, volumes = scan.meta, scan.paths, scan.volumes
    if meta.dropped_keys:
        log.warning(
            "folder %s: dropped %d scan.json key(s) outside the contract and the allowlist",
            folder.name,
            meta.dropped_keys,
        )
    bmode = volumes["bmode"]
    try:
        with guarded("checking the volumes"):
            _check_burned_in(volumes, policy)
            _check_bmode(bmode)
            if "swe" in volumes:
                _check_swe(volumes["swe"], bmode)
            if "layers" in volumes:
                _check_layers(volumes["layers"], bmode)
        with guarded("hashing the scan's files"):
            content_hash = files_hash([*paths.values(), folder.path / "scan.json"])
    except ScanError as exc:
        raise exc.located(folder=folder.name, scan_id=meta.scan_id) from None

    spacing = bmode.spacing
    record = ScanRecord(
        scan_id=meta.scan_id,
        subject_id=meta.subject_id,
        label=meta.label,
        side=meta.side,
        acquired_at=meta.acquired_at,
        site=meta.site,
        device=meta.device,
        folder=folder.name,
        format=volume_extension(paths["bmode"]) or "unknown",
        shape_lateral=bmode.shape[0],
        shape_depth=bmode.shape[1],
        shape_sweep=bmode.shape[2],
        spacing_lateral_mm=spacing[0],
        spacing_depth_mm=spacing[1],
        spacing_sweep_mm=spacing[2],
        dtype=str(bmode.metadata.get("dtype", bmode.array.dtype)),
        has_swe="swe" in volumes,
        has_reference_layers="layers" in volumes,
        content_hash=content_hash,
        fingerprint=folder.fingerprint,
        metadata=json.dumps(meta.extra, sort_keys=True, default=str),
        ingested_at=utc_now(),
    )
    return record


@dataclass(frozen=True)
class RegisteredScan:
    """What the manifest already knows of a scan, for the cohort-level rules."""

    folder: str
    subject_id: str
    label: str | None


def intake(
    folders: Iterable[LandedFolder],
    landing: Path,
    registered: Mapping[str, RegisteredScan],
    policy: IntakePolicy | None = None,
) -> IntakeResult:
    """Inspect new or changed folders and apply the cohort-level rules.

    Args:
        folders: the folders to inspect (callers pass only new or changed ones).
        landing: the landing-zone root, for the path-safety checks.
        registered: scan_id → scans already in the manifest. A newcomer that reuses a registered
            scan_id from another folder is quarantined (the registered scan stays); so is a scan
            whose subject is already registered with another label.
        policy: extra scan.json keys, pseudonyms, date precision, burned-in DICOM.

    Every folder ends as exactly one accepted record or one quarantine entry, whatever it holds:
    an exception no check anticipated quarantines that folder alone (its reason names the step
    and the exception's class, never a value) and intake goes on.
    """
    accepted: list[ScanRecord] = []
    quarantined: list[QuarantineEntry] = []
    owners = {scan_id: scan.folder for scan_id, scan in registered.items()}
    subject_labels = {scan.subject_id: scan.label for scan in registered.values()}

    def refuse(folder: LandedFolder, scan_id: str | None, reason: str) -> None:
        log.error("quarantined folder %s (scan %s): %s", folder.name, scan_id, reason)
        quarantined.append(
            QuarantineEntry(
                folder=folder.name,
                scan_id=scan_id,
                reason=reason,
                detected_at=utc_now(),
                fingerprint=folder.fingerprint,
            )
        )

    for folder in folders:
        try:
            record = inspect_folder(folder, landing, policy)
        except ScanError as exc:
            refuse(folder, exc.scan_id, exc.reason)
            continue
        except Exception as exc:  # the last line of isolation: see the docstring
            refuse(folder, None, unexpected("inspecting the folder", exc).reason)
            continue
        owner = owners.get(record.scan_id)
        if owner is not None and owner != folder.name:
            refuse(
                folder,
                record.scan_id,
                f"duplicate scan_id: it is already registered from folder {owner!r}",
            )
            continue
        known = subject_labels.get(record.subject_id, record.label)
        if known != record.label:
            refuse(  # labels are contract values ('MP', 'control', null), never free text
                folder,
                record.scan_id,
                f"the subject is registered with label {known!r} but this scan says"
                f" {record.label!r}; a subject's scans must share one label",
            )
            continue
        owners[record.scan_id] = folder.name
        subject_labels[record.subject_id] = record.label
        accepted.append(record)
    return IntakeResult(accepted=accepted, quarantined=quarantined)
