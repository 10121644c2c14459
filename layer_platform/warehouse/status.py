"""A short, human-readable summary of the cohort and the warehouse (``layer-platform status``)."""

from __future__ import annotations

import datetime as dt

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


def cohort_status(paths: LayerPaths) -> str:
    warehouse = Warehouse(paths.warehouse)
    lines = [f"{'LAYER_HOME':<14}{paths.home}", f"{'warehouse':<14}{paths.warehouse}"]
    if not paths.warehouse.exists():
        return "\n".join([*lines, "no warehouse yet: run `layer-platform run`"])
    for title, sql in SUMMARY_QUERIES:
        table = sql.rsplit("FROM", 1)[1].split()[0]
        if not warehouse.table_exists(table):
            continue
        row = warehouse.query(sql).iloc[0]
        counts = ", ".join(f"{name}={int(value)}" for name, value in row.items())
        lines.append(f"{title:<14}{counts}")
    if warehouse.table_exists("quarantine"):
        reasons = warehouse.query(
            "SELECT folder, coalesce(scan_id, '-') AS scan_id, reason FROM quarantine"
            " ORDER BY detected_at DESC LIMIT 10"
        )
        lines += [
            f"  quarantined {r.folder} ({r.scan_id}): {r.reason}" for r in reasons.itertuples()
        ]
    waiting = incomplete_folders(paths.landing)
    if waiting:
        lines.append(
            f"incomplete  {len(waiting)} landing folders without scan.json: "
            + ", ".join(waiting[:10])
        )
    return "\n".join(lines)
