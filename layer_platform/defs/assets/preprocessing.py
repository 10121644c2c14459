"""Preprocessing: each accepted scan → canonical, resampled, normalised volumes on disk."""

from dataclasses import replace

import dagster as dg
import numpy as np
from tqdm import tqdm

from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.assets.ingestion import cohort_manifest
from layer_platform.defs.automation import new_scan
from layer_platform.defs.resources import PreprocessingResource, StorageResource
from layer_platform.errors import ScanError
from layer_platform.imaging.figures import mid_slices_png, png_to_markdown
from layer_platform.imaging.preprocess import PreprocessConfig
from layer_platform.imaging.stage import preprocess_landed_scan, preprocessing_row
from layer_platform.ingestion.quarantine import quarantine_rows

#: Fraction of voxels that must show tissue (B-mode above the noise floor) in a usable scan.
MIN_TISSUE_FRACTION = 0.2
#: SWE validity below this is reported as a warning (shear waves did not reach the tissue).
MIN_SWE_VALID_FRACTION = 0.3

PREPROCESS_CHECKS = {
    "finite_values": (True, "every preprocessed voxel is finite"),
    "expected_shape": (True, "every volume has the configured working shape"),
    "non_empty_tissue": (True, f"at least {MIN_TISSUE_FRACTION:.0%} of voxels show tissue"),
    "swe_validity": (False, f"SWE valid in at least {MIN_SWE_VALID_FRACTION:.0%} of voxels"),
}


def preprocess_config(resource: PreprocessingResource) -> PreprocessConfig:
    base = PreprocessConfig.gpu() if resource.preset == "gpu" else PreprocessConfig.cpu()
    return replace(base, intensity=resource.intensity) if resource.intensity else base


def _check_results(rows: list[dict], shape: tuple[int, int, int]) -> list[dg.AssetCheckResult]:
    def failing(predicate) -> list[str]:
        return [row["scan_id"] for row in rows if not predicate(row)]

    found = {
        "finite_values": failing(lambda r: r["all_finite"]),
        "expected_shape": failing(
            lambda r: (r["shape_lateral"], r["shape_depth"], r["shape_sweep"]) == shape
        ),
        "non_empty_tissue": failing(lambda r: r["tissue_fraction"] >= MIN_TISSUE_FRACTION),
        "swe_validity": failing(
            lambda r: (
                r["swe_valid_fraction"] is None or r["swe_valid_fraction"] >= MIN_SWE_VALID_FRACTION
            )
        ),
    }
    swe = [r["swe_valid_fraction"] for r in rows if r["swe_valid_fraction"] is not None]
    results = []
    for name, bad in found.items():
        blocking = PREPROCESS_CHECKS[name][0]
        metadata: dict = {
            "failing_scans": dg.MetadataValue.json(bad[:50]),
            "n_failing": len(bad),
            "n_checked": len(rows),
        }
        if name == "swe_validity":
            metadata["swe_valid_fraction_mean"] = float(np.mean(swe)) if swe else 0.0
        results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=not bad,
                severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
                metadata=metadata,
            )
        )
    return results


@stage_asset(
    "preprocessing",
    scan_partitioned=True,
    deps=[cohort_manifest],
    kinds={"pytorch", "duckdb"},
    code_version="preprocess-v2",  # v2: transform.json and true affines (imaging.grid)
    automation_condition=new_scan(),
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(name, asset="preprocessed_volume", blocking=blocking, description=text)
        for name, (blocking, text) in PREPROCESS_CHECKS.items()
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
    """
    paths = storage.paths
    warehouse = storage.warehouse()
    config = preprocess_config(preprocessing)
    keys = list(context.partition_keys)
    scans = warehouse.query(
        "SELECT scan_id, folder, content_hash FROM scans WHERE scan_id IN (SELECT unnest(?))",
        [keys],
    )
    rows, refused = [], []
    for position, scan in enumerate(
        tqdm(scans.itertuples(index=False), total=len(scans), desc="preprocess", unit="scan")
    ):
        out_dir = paths.artifacts / "preprocessed" / scan.scan_id
        try:
            result = preprocess_landed_scan(
                paths.landing / scan.folder, paths.landing, config, out_dir
            )
        except ScanError as exc:
            located = exc.located(folder=scan.folder, scan_id=scan.scan_id)
            context.log.error(f"quarantined: {located}")
            refused.append(located)
            continue
        stats = result.stats()
        rows.append(preprocessing_row(scan.scan_id, scan.content_hash, scan.folder, stats))
        metadata: dict = {
            "path": dg.MetadataValue.path(str(out_dir)),
            "shape": str(stats["shape"]),
            "spacing_mm": str(tuple(round(s, 3) for s in config.target_spacing)),
            "bmode_mean": stats["bmode_mean"],
            "swe_valid_fraction": stats["swe_valid_fraction"],
            "content_hash": scan.content_hash[:16],
        }
        if position < preprocessing.preview_limit:
            png = mid_slices_png(
                result.bmode,
                overlay=result.layers,
                spacing=config.target_spacing,
                title=scan.scan_id,
            )
            metadata["mid_slices"] = dg.MetadataValue.md(png_to_markdown(png, scan.scan_id))
        context.add_asset_metadata(metadata, partition_key=scan.scan_id)

    warehouse.replace("preprocessing", rows, key="scan_id", keys=[r["scan_id"] for r in rows])
    if refused:
        warehouse.replace(
            "quarantine", quarantine_rows(refused), key="folder", keys=[e.folder for e in refused]
        )
    return dg.MaterializeResult(
        metadata={
            "n_scans": len(rows),
            "n_quarantined": len(refused),
            "working_shape": str(config.target_shape),
            "working_spacing_mm": str(config.target_spacing),
            "intensity": config.intensity,
        },
        check_results=_check_results(rows, config.target_shape),
    )
