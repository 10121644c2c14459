"""Ingestion: landing zone → validated cohort manifest (``scans``) + ``quarantine``."""

import hashlib

import dagster as dg
import pandas as pd

from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.catalog import table_metadata
from layer_platform.defs.partitions import SCANS
from layer_platform.defs.resources import StorageResource
from layer_platform.ingestion.manifest import refresh_manifest
from layer_platform.quality.expectations import validate_scans

MANIFEST_CHECKS = {
    "scans": "GX: schema, unique non-null scan_id, allowed labels, spacing > 0",
    "subject_labels": "GX: every subject's scans share one label",
}


@stage_asset(
    "ingestion",
    kinds={"duckdb", "python"},
    code_version="intake-v1",
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(name, asset="cohort_manifest", blocking=True, description=text)
        for name, text in MANIFEST_CHECKS.items()
    ],
)
def cohort_manifest(
    context: dg.AssetExecutionContext, storage: StorageResource
) -> dg.MaterializeResult:
    """One row per accepted scan (``scans`` table); refused folders go to ``quarantine``.

    Intake reads every new or changed landing folder once, so only readable, finite, aligned
    scans become partitions: a bad scan never blocks the cohort. The data version is the
    registered content (:func:`manifest_version`): an intake that accepted nothing new leaves
    the per-scan assets fresh.
    """
    warehouse = storage.warehouse()
    update = refresh_manifest(storage.paths.landing, warehouse, progress=True)
    for entry in update.quarantined:
        context.log.error(
            f"quarantined folder {entry.folder!r} (scan {entry.scan_id}): {entry.reason}"
        )

    scans = warehouse.query("SELECT * FROM scans ORDER BY scan_id")
    known = set(context.instance.get_dynamic_partitions(SCANS))
    new_keys = [key for key in scans["scan_id"] if key not in known]
    if new_keys:
        context.instance.add_dynamic_partitions(SCANS, new_keys)
        context.log.info(f"registered {len(new_keys)} new scan partitions")

    n_quarantined = int(warehouse.query("SELECT count(*) AS n FROM quarantine")["n"].iloc[0])
    outcomes = validate_scans(scans)
    return dg.MaterializeResult(
        data_version=manifest_version(scans),
        metadata={
            "n_scans": len(scans),
            "n_subjects": int(scans["subject_id"].nunique()),
            "n_new_or_changed": len(update.accepted),
            "n_quarantined_this_run": len(update.quarantined),
            "n_quarantined_total": n_quarantined,
            "labels": dg.MetadataValue.json(
                {str(k): int(v) for k, v in scans["label"].value_counts(dropna=False).items()}
            ),
            "formats": dg.MetadataValue.json(
                {str(k): int(v) for k, v in scans["format"].value_counts().items()}
            ),
            "new_partitions": len(new_keys),
            **table_metadata(warehouse, "scans", "quarantine", "landing_index"),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=outcome.suite,
                passed=outcome.success,
                metadata={"expectations": dg.MetadataValue.md(outcome.markdown())},
            )
            for outcome in outcomes
        ],
    )


def manifest_version(scans: pd.DataFrame) -> dg.DataVersion:
    """The registered content: a hash of every scan id with its landed content hash."""
    pairs = sorted(zip(scans["scan_id"], scans["content_hash"], strict=True))
    digest = hashlib.sha256("\n".join(f"{s}:{h}" for s, h in pairs).encode()).hexdigest()
    return dg.DataVersion(f"{len(pairs)} scans {digest[:16]}")
