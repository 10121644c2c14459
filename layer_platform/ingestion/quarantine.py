"""Quarantine rows for scans refused after intake (a later stage found the problem)."""

from __future__ import annotations

from collections.abc import Iterable

from layer_platform.errors import ScanError
from layer_platform.ingestion.intake import QuarantineEntry
from layer_platform.timestamps import utc_now


def quarantine_rows(errors: Iterable[ScanError]) -> list[dict]:
    """``quarantine`` table rows; the scan's earlier outputs stay (nothing is lost)."""
    now = utc_now()
    return [
        QuarantineEntry(
            folder=e.folder or "", scan_id=e.scan_id, reason=e.reason, detected_at=now
        ).as_row()
        for e in errors
    ]
