"""Which scans a stage still has to (re)compute: the warehouse side of the stage plan."""

from __future__ import annotations

import pandas as pd

from layer_platform.statistics.ranking import SUMMARY_TABLES
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
#: missing, older than their segmentation or computed under other attribution settings
#: (``$settings``), and QC-failed scans that still have such rows. SWE modes only concern scans
#: with valid SWE (``swe_valid_fraction > 0``).
PENDING_SALIENCY = f"""
    WITH done AS (
        SELECT scan_id, min(computed_at) AS computed_at,
               bool_and(coalesce(attribution_settings = $settings, false)) AS current_settings
        FROM layer_saliency
        WHERE input_mode = $mode AND model_version = $version GROUP BY scan_id
    )
    SELECT g.scan_id FROM segmentations g JOIN preprocessing p USING (scan_id)
    LEFT JOIN done d USING (scan_id)
    WHERE ($mode = 'bmode' OR coalesce(p.swe_valid_fraction, 0) > 0)
      AND ((g.qc_passed
            AND (d.scan_id IS NULL OR d.computed_at < g.computed_at OR NOT d.current_settings)
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


def pending_saliency(warehouse: Warehouse, versions: dict[str, str], settings: str) -> list[str]:
    """Scans ``compute_saliency`` must (re)run for the champion ``versions`` (mode → version)
    under the attribution ``settings`` (``SaliencyResource.attribution_settings()``), plus,
    when there is any, the scans it would pass over without work (see ``NO_SALIENCY_WORK``), so
    the stage stays one batched run."""
    if not versions or not warehouse.table_exists("segmentations"):
        return []
    first = not warehouse.table_exists("layer_saliency")
    pending: set[str] = set()
    for mode, version in versions.items():
        sql = PENDING_SALIENCY_FIRST if first else PENDING_SALIENCY
        params = (
            {"mode": mode} if first else {"mode": mode, "version": version, "settings": settings}
        )
        pending |= set(warehouse.query(sql, params)["scan_id"])
    if pending:
        idle = warehouse.query(NO_SALIENCY_WORK, {"bmode": "bmode" in versions})["scan_id"]
        pending |= set(idle)
    return sorted(pending)


#: Of the given scans, those whose rows of one champion (``$mode``, ``$version``) are up to
#: date: newer than the scan's QC-passed segmentation (``PENDING_SALIENCY``'s "done"),
#: computed under the current attribution settings and covering every configured method.
CURRENT_SALIENCY = """
    SELECT l.scan_id FROM layer_saliency l JOIN segmentations g USING (scan_id)
    WHERE l.scan_id IN (SELECT unnest($scans)) AND l.input_mode = $mode
      AND l.model_version = $version AND g.qc_passed
    GROUP BY l.scan_id, g.computed_at
    HAVING min(l.computed_at) >= g.computed_at AND list_has_all(list(l.method), $methods)
       AND bool_and(coalesce(l.attribution_settings = $settings, false))
"""


def current_saliency(
    warehouse: Warehouse,
    versions: dict[str, str],
    scan_ids: list[str],
    methods: list[str],
    settings: str,
) -> dict[str, set[str]]:
    """Scan → the modes whose champion rows are up to date for every method in ``methods``
    and computed under the attribution ``settings``: what a re-run keeps of a scan an
    interruption left half done."""
    if not warehouse.table_exists("layer_saliency") or not scan_ids:
        return {}
    current: dict[str, set[str]] = {}
    for mode, version in versions.items():
        params = {
            "scans": scan_ids,
            "mode": mode,
            "version": version,
            "methods": methods,
            "settings": settings,
        }
        for scan_id in warehouse.query(CURRENT_SALIENCY, params)["scan_id"]:
            current.setdefault(scan_id, set()).add(mode)
    return current


def _data_randomized_at(warehouse: Warehouse, mode: str, version: str) -> pd.Timestamp | None:
    """When ``layer-platform sanity`` last stored a result for this champion (a verdict gate)."""
    if not warehouse.table_exists("data_randomization_checks"):
        return None
    found = warehouse.query(
        "SELECT max(computed_at) AS t FROM data_randomization_checks"
        " WHERE input_mode = $mode AND model_version = $version",
        {"mode": mode, "version": version},
    )["t"].iloc[0]
    return None if pd.isna(found) else found


def summary_pending(warehouse: Warehouse, versions: dict[str, str]) -> bool:
    """True when some mode has champion rows and the cohort tables are missing, older than
    those rows (or than a data-randomization result of that champion: a gate of its
    verdicts), or summarize another version of that mode."""
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
            newest[mode] = max(found, _data_randomized_at(warehouse, mode, version) or found)
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
