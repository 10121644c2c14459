"""Quarantine rows for scans refused after intake (a later stage found the problem)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from layer_platform.errors import ScanError
from layer_platform.ingestion.intake import QuarantineEntry


def quarantine_rows(errors: Iterable[ScanError]) -> list[dict]:
    """``quarantine`` table rows; the scan's earlier outputs stay (nothing is lost)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return [
        QuarantineEntry(
            folder=e.folder or "", scan_id=e.scan_id, reason=e.reason, detected_at=now
        ).as_row()
        for e in errors
    ]
