"""DuckDB table contracts. Analysts' SQL depends on these names and columns: change with care."""

from __future__ import annotations

from layer_platform.warehouse.upgrades import UPGRADES

TABLES: dict[str, str] = {
    "scans": """
        CREATE TABLE IF NOT EXISTS scans (
            scan_id VARCHAR PRIMARY KEY,
            subject_id VARCHAR NOT NULL,
            label VARCHAR,
            side VARCHAR,
            acquired_at DATE,
            site VARCHAR,
            device VARCHAR,
            folder VARCHAR NOT NULL,
            format VARCHAR NOT NULL,
            shape_lateral INTEGER NOT NULL,
            shape_depth INTEGER NOT NULL,
            shape_sweep INTEGER NOT NULL,
            spacing_lateral_mm DOUBLE NOT NULL,
            spacing_depth_mm DOUBLE NOT NULL,
            spacing_sweep_mm DOUBLE NOT NULL,
            dtype VARCHAR NOT NULL,
            has_swe BOOLEAN NOT NULL,
            has_reference_layers BOOLEAN NOT NULL,
            content_hash VARCHAR NOT NULL,
            fingerprint VARCHAR NOT NULL,
            metadata VARCHAR,
            ingested_at TIMESTAMP NOT NULL
        )""",
    "quarantine": """
        CREATE TABLE IF NOT EXISTS quarantine (
            folder VARCHAR NOT NULL,
            scan_id VARCHAR,
            reason VARCHAR NOT NULL,
            detected_at TIMESTAMP NOT NULL,
            stage VARCHAR
        )""",
    # Intake bookkeeping: which fingerprint of each landing folder was last inspected, so an
    # unchanged folder (good or bad) is not read again on the next refresh.
    "landing_index": """
        CREATE TABLE IF NOT EXISTS landing_index (
            folder VARCHAR PRIMARY KEY,
            fingerprint VARCHAR NOT NULL,
            scan_id VARCHAR,
            status VARCHAR NOT NULL,
            inspected_at TIMESTAMP NOT NULL
        )""",
    "preprocessing": """
        CREATE TABLE IF NOT EXISTS preprocessing (
            scan_id VARCHAR PRIMARY KEY,
            content_hash VARCHAR NOT NULL,
            folder VARCHAR NOT NULL,
            shape_lateral INTEGER NOT NULL,
            shape_depth INTEGER NOT NULL,
            shape_sweep INTEGER NOT NULL,
            bmode_p1 DOUBLE,
            bmode_p99 DOUBLE,
            bmode_mean DOUBLE,
            swe_valid_fraction DOUBLE,
            tissue_fraction DOUBLE,
            all_finite BOOLEAN NOT NULL,
            processed_at TIMESTAMP NOT NULL
        )""",
    "cohort_split": """
        CREATE TABLE IF NOT EXISTS cohort_split (
            scan_id VARCHAR PRIMARY KEY,
            subject_id VARCHAR NOT NULL,
            label VARCHAR NOT NULL,
            role VARCHAR NOT NULL,
            fold INTEGER
        )""",
    "model_metrics": """
        CREATE TABLE IF NOT EXISTS model_metrics (
            input_mode VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            fold VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            value DOUBLE,
            computed_at TIMESTAMP NOT NULL
        )""",
    "predictions": """
        CREATE TABLE IF NOT EXISTS predictions (
            scan_id VARCHAR NOT NULL,
            input_mode VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            fold_role VARCHAR NOT NULL,
            probability DOUBLE NOT NULL,
            computed_at TIMESTAMP NOT NULL
        )""",
    "segmentations": """
        CREATE TABLE IF NOT EXISTS segmentations (
            scan_id VARCHAR PRIMARY KEY,
            segmentation_source VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            raw_order_ok_fraction DOUBLE NOT NULL,
            order_ok_fraction DOUBLE NOT NULL,
            qc_passed BOOLEAN NOT NULL,
            problems VARCHAR,
            path VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL
        )""",
    "segmentation_qc": """
        CREATE TABLE IF NOT EXISTS segmentation_qc (
            scan_id VARCHAR NOT NULL,
            layer VARCHAR NOT NULL,
            layer_index INTEGER NOT NULL,
            n_voxels BIGINT NOT NULL,
            volume_ml DOUBLE NOT NULL,
            thickness_mean_mm DOUBLE,
            thickness_sd_mm DOUBLE,
            dice DOUBLE,
            order_ok BOOLEAN NOT NULL
        )""",
    # One row per (scan, input mode, method, layer, model version): where a classifier's MP
    # evidence sits. Written by `layer_saliency`; NULL value columns are documented in README.
    "layer_saliency": """
        CREATE TABLE IF NOT EXISTS layer_saliency (
            scan_id VARCHAR NOT NULL,
            subject_id VARCHAR NOT NULL,
            label VARCHAR,
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            layer VARCHAR NOT NULL,
            layer_index INTEGER NOT NULL,
            n_voxels BIGINT NOT NULL,
            volume_fraction DOUBLE NOT NULL,
            mean_saliency DOUBLE,
            saliency_share DOUBLE,
            enrichment DOUBLE,
            ablation_delta DOUBLE,
            segmentation_source VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL,
            explained_by VARCHAR,
            reference_sha256 VARCHAR,
            ablation_delta_bmode DOUBLE,
            ablation_delta_swe DOUBLE,
            joint_ablation_delta DOUBLE,
            swe_coverage DOUBLE,
            mean_saliency_eroded DOUBLE,
            mean_saliency_dilated DOUBLE,
            ablation_delta_eroded DOUBLE,
            ablation_delta_dilated DOUBLE,
            attribution_settings VARCHAR,
            ablation_delta_bmode_eroded DOUBLE,
            ablation_delta_bmode_dilated DOUBLE,
            ablation_delta_swe_eroded DOUBLE,
            ablation_delta_swe_dilated DOUBLE
        )""",
    "attribution_diagnostics": """
        CREATE TABLE IF NOT EXISTS attribution_diagnostics (
            scan_id VARCHAR NOT NULL,
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            value DOUBLE,
            computed_at TIMESTAMP NOT NULL
        )""",
    # Cohort tables of `saliency_summary`, over the champion version of each mode only.
    "layer_summary": """
        CREATE TABLE IF NOT EXISTS layer_summary (
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            subgroup VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            layer VARCHAR NOT NULL,
            layer_index INTEGER NOT NULL,
            n_scans INTEGER NOT NULL,
            n_subjects INTEGER NOT NULL,
            mean DOUBLE,
            median DOUBLE,
            ci_low DOUBLE,
            ci_high DOUBLE,
            rank INTEGER,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL
        )""",
    "layer_ranking": """
        CREATE TABLE IF NOT EXISTS layer_ranking (
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            is_default_method BOOLEAN NOT NULL,
            layer VARCHAR NOT NULL,
            rank INTEGER NOT NULL,
            score DOUBLE,
            ci_low DOUBLE,
            ci_high DOUBLE,
            n_subjects INTEGER NOT NULL,
            subgroup VARCHAR NOT NULL,
            stands_out BOOLEAN NOT NULL,
            verdict VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL
        )""",
    "layer_comparison": """
        CREATE TABLE IF NOT EXISTS layer_comparison (
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            subgroup VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            n_subjects INTEGER NOT NULL,
            mean_difference DOUBLE,
            ci_low DOUBLE,
            ci_high DOUBLE,
            wilcoxon_statistic DOUBLE,
            p_value DOUBLE,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL
        )""",
    "layer_friedman": """
        CREATE TABLE IF NOT EXISTS layer_friedman (
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            subgroup VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            n_subjects INTEGER NOT NULL,
            statistic DOUBLE,
            p_value DOUBLE,
            standout_layer VARCHAR,
            verdict VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL
        )""",
    "randomization_checks": """
        CREATE TABLE IF NOT EXISTS randomization_checks (
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            bar DOUBLE NOT NULL,
            n_scans INTEGER NOT NULL,
            layer_rho DOUBLE,
            voxel_rho DOUBLE,
            passed BOOLEAN NOT NULL,
            computed_at TIMESTAMP NOT NULL
        )""",
    "method_faithfulness": """
        CREATE TABLE IF NOT EXISTS method_faithfulness (
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            variant VARCHAR NOT NULL,
            n_scans INTEGER NOT NULL,
            n_subjects INTEGER NOT NULL,
            mean_area DOUBLE,
            ci_low DOUBLE,
            ci_high DOUBLE,
            share_above_random DOUBLE,
            protocol VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL
        )""",
    "data_randomization_checks": """
        CREATE TABLE IF NOT EXISTS data_randomization_checks (
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            permutation_seed INTEGER NOT NULL,
            protocol VARCHAR NOT NULL,
            n_subjects INTEGER NOT NULL,
            n_tests INTEGER NOT NULL,
            standout_layer VARCHAR,
            holm_p DOUBLE,
            passed BOOLEAN NOT NULL,
            computed_at TIMESTAMP NOT NULL
        )""",
    "driver_recovery": """
        CREATE TABLE IF NOT EXISTS driver_recovery (
            cohort VARCHAR NOT NULL,
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            modality VARCHAR NOT NULL,
            planted_layer VARCHAR NOT NULL,
            rank_of_planted_layer INTEGER,
            recovered BOOLEAN NOT NULL,
            model_version VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL
        )""",
    # Written by `layer-platform validate` into the matrix's own DuckDB file, one row per
    # cohort x input mode x method; never in a cohort's warehouse.
    "validation_matrix": """
        CREATE TABLE IF NOT EXISTS validation_matrix (
            matrix VARCHAR NOT NULL,
            scenario VARCHAR NOT NULL,
            fingerprint VARCHAR NOT NULL,
            seed INTEGER NOT NULL,
            subjects INTEGER NOT NULL,
            input_mode VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            reference_matching VARCHAR NOT NULL,
            is_default_method BOOLEAN NOT NULL,
            planted VARCHAR NOT NULL,
            top_layer VARCHAR NOT NULL,
            planted_rank INTEGER,
            standout_layer VARCHAR,
            verdict VARCHAR NOT NULL,
            heldout_auc DOUBLE,
            oof_auc DOUBLE,
            skill_p DOUBLE,
            beats_chance BOOLEAN NOT NULL,
            confounded_by_site BOOLEAN,
            correct BOOLEAN NOT NULL,
            model_version VARCHAR NOT NULL,
            seconds DOUBLE NOT NULL,
            computed_at TIMESTAMP NOT NULL,
            boundary_sensitivity VARCHAR,
            layer_size_differs VARCHAR
        )""",
}

#: One line per table: what a row is and who writes it (the Dagster asset descriptions and the
#: catalog read these; the columns come from DuckDB itself, see ``warehouse/catalog.py``).
DESCRIPTIONS: dict[str, str] = {
    "scans": "One row per accepted scan: scan.json fields, format, shape, spacing, content hash.",
    "quarantine": "One row per refused landing folder or scan: the stage and the reason.",
    "landing_index": "One row per landing folder: the fingerprint last inspected and its outcome.",
    "preprocessing": "One row per preprocessed scan: working shape, intensity statistics, SWE"
    " validity, tissue fraction.",
    "cohort_split": "One row per labelled scan: its subject's role (development/test) and fold.",
    "model_metrics": "One row per input mode, model version, fold and metric of the classifiers.",
    "predictions": "One row per scan, input mode and model version: the predicted MP probability.",
    "segmentations": "One row per segmented scan: source, model version, layer-order QC, path.",
    "segmentation_qc": "One row per scan and layer: voxels, volume, thickness, Dice, order check.",
    "layer_saliency": "One row per scan, input mode, method, layer and model version: where the"
    " classifier's MP evidence sits.",
    "attribution_diagnostics": "One row per scan, input mode, method, model version and metric:"
    " timings and integrated-gradients completeness.",
    "layer_summary": "Per input mode, method, subgroup, metric and layer: subject-level bootstrap"
    " CIs over the champions' layer_saliency rows.",
    "layer_ranking": "Per input mode, method and layer: rank, score and CI, and whether any layer"
    " stands out (the verdict).",
    "layer_comparison": "Per input mode, method and subgroup: non-muscle minus muscle, paired by"
    " subject (CI, Wilcoxon).",
    "layer_friedman": "Per input mode, method and subgroup: the Friedman test across layers.",
    "randomization_checks": "Per input mode, method and champion version: how much the layer"
    " profile changes when the model's weights are randomized.",
    "method_faithfulness": "Per input mode, method and removal (deletion, road): on the"
    " champion's held-out scans, how much faster removing layers in the method's order lowers"
    " the predicted class's probability than removing them in random orders (area between).",
    "data_randomization_checks": "Per input mode, method, champion version and permutation"
    " seed: whether a classifier retrained on subject-permuted labels also gives a standing-out"
    " layer (layer-platform sanity).",
    "driver_recovery": "Simulated cohorts only: the rank of each planted driver layer in"
    " layer_ranking.",
    "validation_matrix": "Validation matrices only (their own DuckDB file): per simulated cohort,"
    " input mode and method, the planted layers, where they ranked, what stood out and whether"
    " that was right.",
}


def create_statements(table: str) -> tuple[str, ...]:
    """``table``'s CREATE statement followed by its upgrades."""
    return (TABLES[table], *UPGRADES.get(table, ()))
