"""Preprocessing: each accepted scan → canonical, resampled, normalised volumes on disk."""

from dataclasses import replace

import dagster as dg

from layer_platform.batching import ScanResult
from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.assets.ingestion import cohort_manifest
from layer_platform.defs.automation import new_scan
from layer_platform.defs.catalog import table_metadata
from layer_platform.defs.per_scan import check_result, run_scans
from layer_platform.defs.resources import PreprocessingResource, StorageResource
from layer_platform.imaging.preprocess import PreprocessConfig
from layer_platform.imaging.stage import PREPROCESS_CHECKS, LandedScan, preprocess_batch_scan

STAGE = "preprocessing"


def preprocess_config(resource: PreprocessingResource) -> PreprocessConfig:
    base = PreprocessConfig.preset(resource.preset)
    return replace(base, intensity=resource.intensity) if resource.intensity else base


@stage_asset(
    STAGE,
    scan_partitioned=True,
    deps=[cohort_manifest],
    kinds={"pytorch", "duckdb"},
    code_version="preprocess-v2",  # v2: transform.json and true affines (imaging.grid)
    automation_condition=new_scan(),
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(name, asset="preprocessed_volume", description=text)
        for name, (_, text) in PREPROCESS_CHECKS.items()
    ],
)
def preprocessed_volume(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    preprocessing: PreprocessingResource,
) -> dg.MaterializeResult:
    """B-mode, SWE (+ validity mask) and reference layers on the working grid, as NIfTI.

    Canonical (lateral, depth, sweep) orientation, MONAI resampling to the configured spacing,
    crop/pad anchored at the skin, robust B-mode normalisation. Files live under
    ``$LAYER_ARTIFACTS_DIR/preprocessed/<scan_id>/``; stats go to the ``preprocessing`` table.
    Each scan is committed as soon as it is done (files swapped in whole, then its row); a scan
    failing a blocking check is quarantined (stage ``preprocessing``), the batch goes on.
    """
    paths = storage.paths
    warehouse = storage.warehouse()
    config = preprocess_config(preprocessing)
    keys = list(context.partition_keys)
    found = warehouse.query(
        "SELECT scan_id, folder, content_hash FROM scans WHERE scan_id IN (SELECT unnest(?))"
        " ORDER BY scan_id",
        [keys],
    )
    scans = {row.scan_id: LandedScan(*row) for row in found.itertuples(index=False)}
    previews = set(list(scans)[: preprocessing.preview_limit])

    def work(scan_id: str) -> ScanResult:
        out_dir = paths.artifacts / "preprocessed" / scan_id
        return preprocess_batch_scan(
            scans[scan_id], paths.landing, config, out_dir, preview=scan_id in previews
        )

    outcome = run_scans(context, STAGE, list(scans), work, warehouse)
    return dg.MaterializeResult(
        metadata={
            "n_scans": len(outcome.done),
            "n_quarantined": len(outcome.quarantined),
            "quarantined": dg.MetadataValue.json(outcome.quarantined),
            "seconds_total": round(outcome.total_seconds, 1),
            "working_shape": str(config.target_shape),
            "working_spacing_mm": str(config.target_spacing),
            "intensity": config.intensity,
            **table_metadata(warehouse, "preprocessing"),
        },
        check_results=[
            check_result(name, outcome.failing(name), blocking=blocks, n_checked=len(scans))
            for name, (blocks, _) in PREPROCESS_CHECKS.items()
        ],
    )
