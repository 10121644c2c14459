"""The stage plan behind ``layer-platform run``: which job to run next, for which scans."""

from __future__ import annotations

from layer_platform.classification.modes import INPUT_MODES
from layer_platform.defs.assets.classification import LABELLED_PREPROCESSED
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
    """Ingest the landing zone, then bring every per-scan and cohort asset up to date.

    Stages run in lineage order and stop at the first platform failure; bad scans do not fail a
    stage (they are quarantined inside it).
    """
    defs = build_definitions(paths=paths)
    instance = open_instance(paths)
    warehouse = Warehouse(paths.warehouse)
    reports: list[StageReport] = []

    def stage(job: str, partition_keys: list[str] | None = None) -> bool:
        if partition_keys is not None and not partition_keys:
            return True
        reports.append(
            run_job(defs, instance, job, partition_keys=partition_keys, max_batch=max_batch)
        )
        return not reports[-1].failed

    if not stage("ingest"):
        return reports
    if not stage("preprocess_scans", list(warehouse.query(PENDING_PREPROCESSING)["scan_id"])):
        return reports
    if not warehouse.query(LABELLED_PREPROCESSED).empty:
        stage("train_classifiers", list(INPUT_MODES))
    return reports
