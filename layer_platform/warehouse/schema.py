"""DuckDB table contracts. Analysts' SQL depends on these names and columns: change with care."""

from __future__ import annotations

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
            detected_at TIMESTAMP NOT NULL
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
}
