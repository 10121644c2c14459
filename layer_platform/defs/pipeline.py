"""The stage plan behind ``layer-platform run``: which job to run next, for which scans."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from layer_platform.classification.modes import INPUT_MODES
from layer_platform.defs.assets.classification import LABELLED_PREPROCESSED, registered_name
from layer_platform.defs.assets.saliency import SUMMARY_TABLES
from layer_platform.defs.assets.segmentation import ANNOTATED, SEGMENTER
from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.runner import StageReport, open_instance, run_job
from layer_platform.defs.stages import STAGES
from layer_platform.settings import LayerPaths
from layer_platform.tracking.mlflow_registry import (
    Tracking,
    champion,
    data_version,
    latest_data_version,
)
from layer_platform.warehouse.store import Warehouse


def _not_quarantined(stage: str, scan: str, since: str) -> str:
    """SQL: the scan was not quarantined at ``stage`` since its input (``since``) last changed.
    A refused scan is retried once its input changes, not on every run (it would fail again)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.scan_id = {scan}"
        f" AND q.stage = '{stage}' AND q.detected_at >= {since})"
    )


#: Scans whose preprocessed volume is missing or was made from other landed bytes.
PENDING_PREPROCESSING = f"""
    SELECT s.scan_id FROM scans s LEFT JOIN preprocessing p USING (scan_id)
    WHERE (p.scan_id IS NULL OR p.content_hash <> s.content_hash)
      AND {_not_quarantined("preprocessing", "s.scan_id", "s.ingested_at")}
    ORDER BY s.scan_id
"""

#: Of the given scans, those that are training data of a model (labelled: the classifiers;
#: annotated: the segmenter), whose arrival therefore retrains it.
TRAINING_DATA = """
    SELECT scan_id FROM scans
    WHERE scan_id IN (SELECT unnest(?)) AND (label IS NOT NULL OR has_reference_layers)
"""

#: Scans without a segmentation from their current preprocessing and the champion segmenter.
PENDING_SEGMENTATION = f"""
    SELECT p.scan_id FROM preprocessing p LEFT JOIN segmentations g USING (scan_id)
    WHERE (g.scan_id IS NULL OR g.computed_at < p.processed_at OR g.model_version <> ?)
      AND {_not_quarantined("segmentation", "p.scan_id", "p.processed_at")}
    ORDER BY p.scan_id
"""

#: Per mode with a champion (``$mode``, ``$version``): scans whose rows for that version are
#: missing or older than their segmentation, and QC-failed scans that still have such rows.
#: SWE modes only concern scans with valid SWE (``swe_valid_fraction > 0``).
PENDING_SALIENCY = f"""
    WITH done AS (
        SELECT scan_id, min(computed_at) AS computed_at FROM layer_saliency
        WHERE input_mode = $mode AND model_version = $version GROUP BY scan_id
    )
    SELECT g.scan_id FROM segmentations g JOIN preprocessing p USING (scan_id)
    LEFT JOIN done d USING (scan_id)
    WHERE ($mode = 'bmode' OR coalesce(p.swe_valid_fraction, 0) > 0)
      AND ((g.qc_passed AND (d.scan_id IS NULL OR d.computed_at < g.computed_at)
            AND {_not_quarantined("saliency", "g.scan_id", "g.computed_at")})
           OR (NOT g.qc_passed AND d.scan_id IS NOT NULL))
"""

#: Same, before the first saliency run (no ``layer_saliency`` table yet).
PENDING_SALIENCY_FIRST = f"""
    SELECT g.scan_id FROM segmentations g JOIN preprocessing p USING (scan_id)
    WHERE g.qc_passed AND ($mode = 'bmode' OR coalesce(p.swe_valid_fraction, 0) > 0)
      AND {_not_quarantined("saliency", "g.scan_id", "g.computed_at")}
"""


#: Scans a saliency run passes over without work: QC failed with nothing to delete, or no
#: valid SWE while no B-mode champion exists. Listed with real work so the partition keys
#: stay contiguous (one batched run instead of one per gap).
NO_SALIENCY_WORK = """
    SELECT g.scan_id FROM segmentations g JOIN preprocessing p USING (scan_id)
    WHERE NOT g.qc_passed OR (NOT $bmode AND coalesce(p.swe_valid_fraction, 0) = 0)
"""


def pending_saliency(warehouse: Warehouse, versions: dict[str, str]) -> list[str]:
    """Scans ``compute_saliency`` must (re)run for the champion ``versions`` (mode → version),
    plus, when there is any, the scans it would pass over without work (see
    ``NO_SALIENCY_WORK``), so the stage stays one batched run."""
    if not versions or not warehouse.table_exists("segmentations"):
        return []
    first = not warehouse.table_exists("layer_saliency")
    pending: set[str] = set()
    for mode, version in versions.items():
        sql = PENDING_SALIENCY_FIRST if first else PENDING_SALIENCY
        params = {"mode": mode} if first else {"mode": mode, "version": version}
        pending |= set(warehouse.query(sql, params)["scan_id"])
    if pending:
        idle = warehouse.query(NO_SALIENCY_WORK, {"bmode": "bmode" in versions})["scan_id"]
        pending |= set(idle)
    return sorted(pending)


def summary_pending(warehouse: Warehouse, versions: dict[str, str]) -> bool:
    """True when some mode has champion rows and the cohort tables are missing, older than
    those rows, or summarize another version of that mode."""
    if not versions or not warehouse.table_exists("layer_saliency"):
        return False
    newest = {}
    for mode, version in versions.items():
        found = warehouse.query(
            "SELECT max(computed_at) AS t FROM layer_saliency"
            " WHERE input_mode = $mode AND model_version = $version",
            {"mode": mode, "version": version},
        )["t"].iloc[0]
        if not pd.isna(found):
            newest[mode] = found
    if not newest:
        return False
    if not all(warehouse.table_exists(table) for table in SUMMARY_TABLES):
        return True
    summary = warehouse.query(
        "SELECT input_mode, model_version, max(computed_at) AS t FROM layer_ranking GROUP BY ALL"
    )
    summarized = {row.input_mode: (row.model_version, row.t) for row in summary.itertuples()}
    return any(
        mode not in summarized
        or summarized[mode][0] != versions[mode]
        or summarized[mode][1] < computed
        for mode, computed in newest.items()
    )


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
    New scans that change no model (unlabelled, unannotated, champions current) take the
    ``update_scans`` job instead: preprocessing, segmentation and saliency in one run, so an
    arrival pays one run's fixed cost, not three.
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
            stale = latest_data_version(tracking, SEGMENTER) != data_version(annotated)
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
                if latest_data_version(tracking, registered_name(mode)) != version
            ]
            return stale if labelled else []
        if job in ("compute_saliency", "summarize_saliency"):
            versions = {
                mode: str(found.version)
                for mode in INPUT_MODES
                if (found := champion(tracking, registered_name(mode))) is not None
            }
            if job == "compute_saliency":
                return pending_saliency(warehouse, versions)
            return None if summary_pending(warehouse, versions) else []
        return None

    def changes_no_model(keys: list[str]) -> bool:
        """True when ``keys`` (scans to preprocess) can go through all three per-scan assets in
        one run: both kinds of model have a current champion and no key is training data."""
        return (
            until is None
            and pending("train_segmenter") == []
            and pending("train_classifiers") == []
            and champion(tracking, SEGMENTER) is not None
            and any(champion(tracking, registered_name(mode)) for mode in INPUT_MODES)
            and warehouse.query(TRAINING_DATA, [keys]).empty
        )

    for stage in STAGES:
        keys = pending(stage)
        job = stage
        if stage == "preprocess_scans" and keys and changes_no_model(keys):
            job = "update_scans"  # arrivals: one run instead of three, as the sensor does
        if keys is None or keys:
            reports.append(run_job(defs, instance, job, partition_keys=keys, max_batch=max_batch))
            if reports[-1].failed:
                break
        if stage == until:
            break
    return reports
