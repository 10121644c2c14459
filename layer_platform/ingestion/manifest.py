"""Incremental refresh of the cohort manifest (``scans``) and the ``quarantine`` table.

Only folders whose fingerprint changed since their last inspection are read again, so a
refresh over thousands of registered scans costs a directory listing plus the new scans.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from layer_platform.ingestion.intake import (
    IntakeResult,
    QuarantineEntry,
    RegisteredScan,
    ScanRecord,
    intake,
)
from layer_platform.ingestion.landing import discover
from layer_platform.ingestion.policy import IntakePolicy
from layer_platform.timestamps import utc_now
from layer_platform.warehouse.store import Replacement, Warehouse

#: The ``quarantine.stage`` of folders refused at intake.
INTAKE_STAGE = "ingestion"


@dataclass(frozen=True)
class ManifestUpdate:
    """What one refresh changed."""

    accepted: list[ScanRecord]
    quarantined: list[QuarantineEntry]
    unchanged: int
    n_registered: int

    @property
    def accepted_ids(self) -> list[str]:
        return [record.scan_id for record in self.accepted]


def registered_scans(warehouse: Warehouse) -> dict[str, RegisteredScan]:
    frame = warehouse.query("SELECT scan_id, folder, subject_id, label FROM scans")
    return {
        row.scan_id: RegisteredScan(row.folder, row.subject_id, row.label)
        for row in frame.itertuples(index=False)
    }


def refresh_manifest(
    landing: Path,
    warehouse: Warehouse,
    *,
    progress: bool = False,
    policy: IntakePolicy | None = None,
) -> ManifestUpdate:
    """Inspect new and changed landing folders and record the outcome in the warehouse.

    ``policy`` is the site's intake policy; None reads it from the environment
    (:meth:`IntakePolicy.from_env`, the ``LAYER_*`` variables of ``docs/security.md``).

    A scan whose re-export turns out bad keeps its previously registered row (nothing
    materialized is lost) and gains a quarantine row explaining why the new export was refused.
    """
    warehouse.ensure_schema()
    inspected = dict(
        warehouse.query("SELECT folder, fingerprint FROM landing_index").itertuples(index=False)
    )
    folders = discover(landing)
    todo = [f for f in folders if inspected.get(f.name) != f.fingerprint]
    registered = registered_scans(warehouse)
    result: IntakeResult = intake(
        tqdm(todo, desc="intake", unit="scan", disable=not progress),
        landing,
        registered,
        IntakePolicy.from_env() if policy is None else policy,
    )

    now = utc_now()
    status = {r.folder: (r.scan_id, "accepted") for r in result.accepted}
    status.update({q.folder: (q.scan_id, "quarantined") for q in result.quarantined})
    inspected_folders = [f.name for f in todo]
    # One transaction: a crash leaves the folders' previous rows, so they are inspected again;
    # a reader never sees a scan registered without its landing_index row, or the reverse.
    warehouse.replace_all(
        [
            Replacement(
                "scans",
                [r.as_row() for r in result.accepted],
                key="scan_id",
                keys=[r.scan_id for r in result.accepted],
            ),
            Replacement(
                "quarantine",
                [{**q.as_row(), "stage": INTAKE_STAGE} for q in result.quarantined],
                key="folder",
                keys=inspected_folders,
                scope={"stage": INTAKE_STAGE},
            ),
            Replacement(
                "landing_index",
                [
                    {
                        "folder": f.name,
                        "fingerprint": f.fingerprint,
                        "scan_id": status[f.name][0],
                        "status": status[f.name][1],
                        "inspected_at": now,
                    }
                    for f in todo
                ],
                key="folder",
                keys=inspected_folders,
            ),
        ]
    )
    return ManifestUpdate(
        accepted=result.accepted,
        quarantined=result.quarantined,
        unchanged=len(folders) - len(todo),
        n_registered=len(registered) + len({r.scan_id for r in result.accepted} - set(registered)),
    )
