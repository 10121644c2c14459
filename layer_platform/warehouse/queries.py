"""Read queries the stages share: training data, the cohort reference, champion rows and skill.

Each query is a named constant (parameters bound by DuckDB, never formatted in), so the assets,
the stage plan and the schedules ask the warehouse the same question the same way.
"""

from __future__ import annotations

import pandas as pd

from layer_platform.statistics.skill import AucEstimate, ClassifierSkill
from layer_platform.warehouse.store import Warehouse

#: Labelled scans with a preprocessed volume: the classifiers' training data.
LABELLED_PREPROCESSED = """
    SELECT s.scan_id, s.subject_id, s.label FROM scans s JOIN preprocessing p USING (scan_id)
    WHERE s.label IS NOT NULL ORDER BY s.scan_id
"""

#: Scans with reference layers and a preprocessed volume: the segmenter's training data.
ANNOTATED = """
    SELECT s.scan_id, s.subject_id FROM scans s JOIN preprocessing p USING (scan_id)
    WHERE s.has_reference_layers ORDER BY s.scan_id
"""

#: Controls whose layers define the ``cohort`` baseline.
CONTROL_SCANS = """
    SELECT s.scan_id, s.subject_id, g.path FROM scans s JOIN segmentations g USING (scan_id)
    WHERE s.label = 'control' AND g.qc_passed ORDER BY s.scan_id
"""

#: One mode's champion rows, with whether the classifier called the scan right (the stored
#: out-of-fold or held-out prediction of that version, at its operating threshold).
CHAMPION_ROWS = """
    WITH called AS (
        SELECT scan_id, avg(probability) AS probability FROM predictions
        WHERE input_mode = $mode AND model_version = $version GROUP BY scan_id
    ), threshold AS (
        SELECT coalesce(max(value), 0.5) AS value FROM model_metrics
        WHERE input_mode = $mode AND model_version = $version
          AND fold = 'test' AND metric = 'threshold'
    )
    SELECT l.*, CASE l.label WHEN 'MP' THEN c.probability >= t.value
                             WHEN 'control' THEN c.probability < t.value END AS correct
    FROM layer_saliency l LEFT JOIN called c USING (scan_id) CROSS JOIN threshold t
    WHERE l.input_mode = $mode AND l.model_version = $version
    ORDER BY l.scan_id, l.method, l.layer_index
"""

#: A champion's AUC and its CI, cross-validated (``cv``) and held out (``test``).
CLASSIFIER_AUC = """
    SELECT fold, metric, value FROM model_metrics
    WHERE input_mode = $mode AND model_version = $version AND fold IN ('cv', 'test')
      AND metric IN ('auc', 'auc_ci_low', 'auc_ci_high')
"""

#: Randomization results already computed for a champion version with the current settings.
CACHED_RANDOMIZATION = """
    SELECT method, layer_rho, voxel_rho, passed FROM randomization_checks
    WHERE input_mode = $mode AND model_version = $version AND bar = $bar AND n_scans = $n_scans
"""


def champion_rows(warehouse: Warehouse, versions: dict[str, str]) -> pd.DataFrame:
    """``layer_saliency`` rows of each mode's champion version, with a ``correct`` column."""
    if not versions or not warehouse.table_exists("layer_saliency"):
        return pd.DataFrame()
    frames = [
        warehouse.query(CHAMPION_ROWS, {"mode": mode, "version": version})
        for mode, version in versions.items()
    ]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def classifier_skill(warehouse: Warehouse, mode: str, version: str) -> ClassifierSkill:
    """What ``pain_classifier`` recorded for this champion (None where it recorded nothing)."""
    if not warehouse.table_exists("model_metrics"):
        return ClassifierSkill(None, None)
    found = warehouse.query(CLASSIFIER_AUC, {"mode": mode, "version": version})
    values = {(row.fold, row.metric): float(row.value) for row in found.itertuples(index=False)}

    def estimate(fold: str) -> AucEstimate | None:
        keys = [(fold, m) for m in ("auc", "auc_ci_low", "auc_ci_high")]
        return AucEstimate(*(values[k] for k in keys)) if all(k in values for k in keys) else None

    return ClassifierSkill(estimate("cv"), estimate("test"))


def cached_randomization(
    warehouse: Warehouse, mode: str, version: str, *, bar: float, n_scans: int
) -> dict[str, dict]:
    """Per method, the stored randomization outcome of this champion with these settings."""
    if not warehouse.table_exists("randomization_checks"):
        return {}
    found = warehouse.query(
        CACHED_RANDOMIZATION, {"mode": mode, "version": version, "bar": bar, "n_scans": n_scans}
    )
    return {
        row.method: {
            "layer_rho": row.layer_rho,
            "voxel_rho": None if pd.isna(row.voxel_rho) else row.voxel_rho,
            "passed": bool(row.passed),
        }
        for row in found.itertuples(index=False)
    }
