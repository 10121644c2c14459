"""The cohort and the warehouse at a glance (``layer-platform status``, text or ``--json``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from layer_platform.ingestion.landing import incomplete_folders
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.store import Warehouse

#: (title, SQL) pairs; each query returns one row of counts.
SUMMARY_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "scans",
        "SELECT count(*) AS scans, count(DISTINCT subject_id) AS subjects,"
        " count(*) FILTER (WHERE label = 'MP') AS mp, count(*) FILTER (WHERE label = 'control')"
        " AS control, count(*) FILTER (WHERE has_swe) AS with_swe,"
        " count(*) FILTER (WHERE has_reference_layers) AS annotated FROM scans",
    ),
    ("preprocessed", "SELECT count(*) AS scans FROM preprocessing"),
    ("quarantine", "SELECT count(*) AS folders FROM quarantine"),
)
#: The most recent quarantine reasons listed (reasons name keys and checks, never values).
QUARANTINE_SHOWN = 10


def quarantined_since(paths: LayerPaths, since: dt.datetime) -> list[str]:
    """One line per scan quarantined at or after ``since``, with its stage and reason."""
    warehouse = Warehouse(paths.warehouse)
    if not warehouse.table_exists("quarantine"):
        return []
    found = warehouse.query(
        "SELECT coalesce(stage, 'ingestion') AS stage, folder, coalesce(scan_id, '-') AS scan_id,"
        " reason FROM quarantine WHERE detected_at >= ? ORDER BY stage, folder",
        [since],
    )
    return [
        f"quarantined at {r.stage}: {r.folder} ({r.scan_id}): {r.reason}"
        for r in found.itertuples()
    ]


def cohort_summary(paths: LayerPaths, *, wait_s: float = 300.0) -> dict[str, Any]:
    """Counts per stage, the latest quarantine reasons and the incomplete landing folders.

    Keys: ``layer_home``, ``warehouse``, ``warehouse_exists``, ``counts`` (title → column →
    count, only for tables that exist), ``quarantined`` (folder, scan_id, reason) and
    ``incomplete_landing`` (folder names). A missing warehouse is a state, not an error;
    ``wait_s`` bounds the wait for a writer's lock.
    """
    summary: dict[str, Any] = {
        "layer_home": str(paths.home),
        "warehouse": str(paths.warehouse),
        "warehouse_exists": paths.warehouse.exists(),
        "counts": {},
        "quarantined": [],
        "incomplete_landing": incomplete_folders(paths.landing),
    }
    if not summary["warehouse_exists"]:
        return summary
    warehouse = Warehouse(paths.warehouse, lock_timeout_s=wait_s)
    for title, sql in SUMMARY_QUERIES:
        table = sql.rsplit("FROM", 1)[1].split()[0]
        if warehouse.table_exists(table):
            row = warehouse.query(sql).iloc[0]
            summary["counts"][title] = {name: int(value) for name, value in row.items()}
    if warehouse.table_exists("quarantine"):
        reasons = warehouse.query(
            "SELECT folder, scan_id, coalesce(stage, 'ingestion') AS stage, reason FROM quarantine"
            " ORDER BY detected_at DESC LIMIT ?",
            [QUARANTINE_SHOWN],
        )
        summary["quarantined"] = [
            {"folder": r.folder, "scan_id": r.scan_id, "stage": r.stage, "reason": r.reason}
            for r in reasons.itertuples()
        ]
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """``cohort_summary`` as the aligned text ``layer-platform status`` prints."""
    lines = [
        f"{'LAYER_HOME':<14}{summary['layer_home']}",
        f"{'warehouse':<14}{summary['warehouse']}",
    ]
    if not summary["warehouse_exists"]:
        return "\n".join([*lines, "no warehouse yet: run `layer-platform run`"])
    for title, counts in summary["counts"].items():
        lines.append(f"{title:<14}" + ", ".join(f"{k}={v}" for k, v in counts.items()))
    lines += [
        f"  quarantined at {q['stage']}: {q['folder']} ({q['scan_id'] or '-'}): {q['reason']}"
        for q in summary["quarantined"]
    ]
    waiting = summary["incomplete_landing"]
    if waiting:
        lines.append(
            f"incomplete  {len(waiting)} landing folders without scan.json: "
            + ", ".join(waiting[:10])
        )
    return "\n".join(lines)
