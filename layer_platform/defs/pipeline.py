"""The stage plan behind ``layer-platform run``: which job to run next, for which scans."""

from __future__ import annotations

from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.runner import StageReport, open_instance, run_job
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.store import Warehouse

#: Scans whose preprocessed volume is missing or was made from other landed bytes.
PENDING_PREPROCESSING = """
    SELECT s.scan_id FROM scans s LEFT JOIN preprocessing p USING (scan_id)
    WHERE p.scan_id IS NULL OR p.content_hash <> s.content_hash
    ORDER BY s.scan_id
"""


def run_platform(paths: LayerPaths, *, max_batch: int = 500) -> list[StageReport]:
    """Ingest the landing zone, then bring every per-scan and cohort asset up to date."""
    defs = build_definitions(paths=paths)
    instance = open_instance(paths)
    warehouse = Warehouse(paths.warehouse)
    reports = [run_job(defs, instance, "ingest")]
    if reports[-1].failed:
        return reports
    pending = list(warehouse.query(PENDING_PREPROCESSING)["scan_id"])
    if pending:
        reports.append(
            run_job(defs, instance, "preprocess_scans", partition_keys=pending, max_batch=max_batch)
        )
    return reports
