"""Read queries the stages share: training data, the cohort reference, champion rows and skill.

Each query is a named constant (parameters bound by DuckDB, never formatted in), so the assets,
the stage plan and the schedules ask the warehouse the same question the same way.
"""

from __future__ import annotations

import pandas as pd

from layer_platform.statistics.confounding import SiteSkill, within_site_skill
from layer_platform.statistics.skill import SkillTest, permutation_skill
from layer_platform.warehouse.store import Warehouse

#: Labelled scans with a preprocessed volume: the classifiers' training data.
LABELLED_PREPROCESSED = """
    SELECT s.scan_id, s.subject_id, s.label FROM scans s JOIN preprocessing p USING (scan_id)
    WHERE s.label IS NOT NULL ORDER BY s.scan_id
"""

#: Subjects per site, label and split part: how the hash split fell across sites (a subject
#: counts at the site of most of its scans).
SPLIT_BY_SITE = """
    WITH subject_site AS (
        SELECT subject_id, coalesce(mode(s.site), 'unknown') AS site
        FROM cohort_split c JOIN scans s USING (scan_id, subject_id) GROUP BY subject_id
    )
    SELECT site, c.label, coalesce('fold_' || c.fold, 'test') AS part,
           count(DISTINCT c.subject_id) AS subjects
    FROM cohort_split c JOIN subject_site USING (subject_id)
    GROUP BY ALL ORDER BY site, c.label, part
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

#: A champion's out-of-fold predictions (cross-validation folds), with the scans' labels.
OUT_OF_FOLD = """
    SELECT p.scan_id, s.subject_id, s.site, s.label = 'MP' AS is_mp,
           avg(p.probability) AS probability
    FROM predictions p JOIN scans s USING (scan_id)
    WHERE p.input_mode = $mode AND p.model_version = $version AND p.fold_role LIKE 'fold_%'
      AND s.label IN ('MP', 'control')
    GROUP BY ALL ORDER BY p.scan_id
"""

#: Randomization results already computed for a champion version with the current settings.
CACHED_RANDOMIZATION = """
    SELECT method, layer_rho, voxel_rho, passed, cascade FROM randomization_checks
    WHERE input_mode = $mode AND model_version = $version AND bar = $bar AND n_scans = $n_scans
      AND protocol = $protocol
"""

#: Data-randomization results already computed for a champion version with this seed.
CACHED_DATA_RANDOMIZATION = """
    SELECT method, n_subjects, n_tests, standout_layer, holm_p, passed
    FROM data_randomization_checks
    WHERE input_mode = $mode AND model_version = $version AND permutation_seed = $seed
      AND protocol = $protocol
"""

#: Per method, whether every stored data-randomization check of a champion version passed.
DATA_RANDOMIZATION_PASSED = """
    SELECT method, bool_and(passed) AS passed FROM data_randomization_checks
    WHERE input_mode = $mode AND model_version = $version AND protocol = $protocol
    GROUP BY method ORDER BY method
"""

#: Labelled scans with a segmentation that passed QC: what a saliency run explains.
EXPLAINABLE_LABELLED = """
    SELECT s.scan_id, g.path FROM scans s JOIN segmentations g USING (scan_id)
    WHERE s.label IS NOT NULL AND g.qc_passed ORDER BY s.scan_id
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


def _out_of_fold(warehouse: Warehouse, mode: str, version: str) -> pd.DataFrame | None:
    """This champion's out-of-fold predictions; None without predictions of both classes."""
    if not warehouse.table_exists("predictions"):
        return None
    found = warehouse.query(OUT_OF_FOLD, {"mode": mode, "version": version})
    return found if found["is_mp"].nunique() == 2 else None


def classifier_skills(
    warehouse: Warehouse, versions: dict[str, str]
) -> tuple[dict[str, SkillTest], dict[str, SiteSkill]]:
    """Per mode whose champion has out-of-fold predictions of both classes: the permutation
    test of its out-of-fold AUC, and the same predictions' skill within the scans' sites
    (``statistics.confounding``)."""
    skills, within_sites = {}, {}
    for mode, version in versions.items():
        if (found := _out_of_fold(warehouse, mode, version)) is None:
            continue
        skills[mode] = permutation_skill(found["probability"], found["is_mp"], found["subject_id"])
        within_sites[mode] = within_site_skill(
            found["probability"], found["is_mp"], found["subject_id"], found["site"]
        )
    return skills, within_sites


def cached_randomization(
    warehouse: Warehouse, mode: str, version: str, *, bar: float, n_scans: int, protocol: str
) -> dict[str, dict]:
    """Per method, the stored randomization outcome of this champion with these settings."""
    if not warehouse.table_exists("randomization_checks"):
        return {}
    found = warehouse.query(
        CACHED_RANDOMIZATION,
        {
            "mode": mode,
            "version": version,
            "bar": bar,
            "n_scans": n_scans,
            "protocol": protocol,
        },
    )
    return {
        row.method: {
            "layer_rho": row.layer_rho,
            "voxel_rho": None if pd.isna(row.voxel_rho) else row.voxel_rho,
            "passed": bool(row.passed),
            "cascade": row.cascade,
        }
        for row in found.itertuples(index=False)
    }


def cached_data_randomization(
    warehouse: Warehouse, mode: str, version: str, *, seed: int, protocol: str
) -> dict[str, dict]:
    """Per method, the stored data-randomization result of this champion and seed."""
    if not warehouse.table_exists("data_randomization_checks"):
        return {}
    found = warehouse.query(
        CACHED_DATA_RANDOMIZATION,
        {"mode": mode, "version": version, "seed": seed, "protocol": protocol},
    )
    return {
        row.method: {
            "n_subjects": int(row.n_subjects),
            "n_tests": int(row.n_tests),
            "standout_layer": None if pd.isna(row.standout_layer) else str(row.standout_layer),
            "holm_p": float(row.holm_p),
            "passed": bool(row.passed),
        }
        for row in found.itertuples(index=False)
    }


def data_randomization_passed(
    warehouse: Warehouse, versions: dict[str, str], *, protocol: str
) -> dict[str, bool]:
    """Per ``mode/method`` of the champions ``versions``, whether the data-randomization check
    passed (every stored seed; absent: not run), for ``Evidence.data_randomization``."""
    if not warehouse.table_exists("data_randomization_checks"):
        return {}
    passed = {}
    for mode, version in versions.items():
        found = warehouse.query(
            DATA_RANDOMIZATION_PASSED, {"mode": mode, "version": version, "protocol": protocol}
        )
        passed |= {f"{mode}/{r.method}": bool(r.passed) for r in found.itertuples(index=False)}
    return passed
