"""The stage plan behind ``layer-platform run``: which job to run next, for which scans."""

from __future__ import annotations

import dagster as dg

from layer_platform.classification.modes import INPUT_MODES
from layer_platform.defs.assets.classification import LABELLED_PREPROCESSED, registered_name
from layer_platform.defs.assets.segmentation import ANNOTATED, SEGMENTER
from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.runner import StageReport, open_instance, run_job
from layer_platform.defs.stages import STAGES
from layer_platform.settings import LayerPaths
from layer_platform.tracking.mlflow_registry import (
    Tracking,
    champion,
    champion_data_version,
    data_version,
)
from layer_platform.warehouse.store import Warehouse

#: Scans whose preprocessed volume is missing or was made from other landed bytes.
PENDING_PREPROCESSING = """
    SELECT s.scan_id FROM scans s LEFT JOIN preprocessing p USING (scan_id)
    WHERE p.scan_id IS NULL OR p.content_hash <> s.content_hash
    ORDER BY s.scan_id
"""

#: Scans without a segmentation from their current preprocessing and the champion segmenter.
PENDING_SEGMENTATION = """
    SELECT p.scan_id FROM preprocessing p LEFT JOIN segmentations g USING (scan_id)
    WHERE g.scan_id IS NULL OR g.computed_at < p.processed_at OR g.model_version <> ?
    ORDER BY p.scan_id
"""


def run_platform(
    paths: LayerPaths,
    *,
    max_batch: int = 500,
    defs: dg.Definitions | None = None,
    until: str | None = None,
) -> list[StageReport]:
    """Ingest the landing zone, then bring every per-scan and cohort asset up to date.

    Stages run in lineage order (``STAGES``), stop after ``until`` if given, and stop at the
    first platform failure; bad scans do not fail a stage (they are quarantined inside it).
    """
    if until is not None and until not in STAGES:
        raise ValueError(f"unknown stage {until!r}; stages are {', '.join(STAGES)}")
    defs = defs or build_definitions(paths=paths)
    instance = open_instance(paths)
    warehouse = Warehouse(paths.warehouse)
    tracking = Tracking.for_paths(paths)
    reports: list[StageReport] = []

    def pending(job: str) -> list[str] | None:
        if job == "preprocess_scans":
            return list(warehouse.query(PENDING_PREPROCESSING)["scan_id"])
        if job == "train_segmenter":
            annotated = list(warehouse.query(ANNOTATED)["scan_id"])
            stale = champion_data_version(tracking, SEGMENTER) != data_version(annotated)
            return None if annotated and stale else []
        if job == "segment_scans":
            current = champion(tracking, SEGMENTER)
            if current is None:
                return []
            return list(warehouse.query(PENDING_SEGMENTATION, [current.version])["scan_id"])
        if job == "train_classifiers":
            labelled = list(warehouse.query(LABELLED_PREPROCESSED)["scan_id"])
            version = data_version(labelled)
            stale = [
                mode
                for mode in INPUT_MODES
                if champion_data_version(tracking, registered_name(mode)) != version
            ]
            return stale if labelled else []
        return None

    for job in STAGES:
        keys = pending(job)
        if keys is None or keys:
            reports.append(run_job(defs, instance, job, partition_keys=keys, max_batch=max_batch))
            if reports[-1].failed:
                break
        if job == until:
            break
    return reports
