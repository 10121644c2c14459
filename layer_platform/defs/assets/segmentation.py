"""``layer_segmentation``: the champion segmenter's six-layer label map for every scan."""

import dagster as dg

from layer_platform.compute import select_device
from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.assets.preprocessing import preprocessed_volume
from layer_platform.defs.assets.segmentation_model import segmentation_model
from layer_platform.defs.automation import per_scan
from layer_platform.defs.catalog import table_metadata
from layer_platform.defs.gx_checks import gx_check_result
from layer_platform.defs.per_scan import run_scans
from layer_platform.defs.resources import SegmenterResource, StorageResource
from layer_platform.labels import TISSUE_LAYERS
from layer_platform.quality.expectations import validate_segmentation_qc
from layer_platform.segmentation.batch import segment_batch_scan
from layer_platform.tracking.mlflow_registry import Tracking, load_champion
from layer_platform.tracking.names import SEGMENTER

SEGMENTATION_CHECKS = {
    "anatomical_order": "layers in order 1 → 6 in at least 99% of columns",
    "all_layers_present": "every one of the six layers is present",
    "plausible_thickness": "mean thickness of each layer within its plausible range",
}


GX_CHECK = "gx_segmentation_tables"
STAGE = "segmentation"
#: Scans of a batch whose overlay preview goes to the partition's metadata.
PREVIEWS = 32
GX_CHECK_TEXT = (
    "GX on the rows written: Dice in [0, 1] or null, finite thickness ≥ 0, order fraction in"
    " [0, 1], one row per scan × layer and one summary per scan"
)


@stage_asset(
    "segmentation",
    scan_partitioned=True,
    deps=[segmentation_model, preprocessed_volume],
    kinds={"pytorch", "duckdb"},
    code_version="segment-v1",
    automation_condition=per_scan(),
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(name, asset="layer_segmentation", description=text)
        for name, text in SEGMENTATION_CHECKS.items()
    ]
    + [dg.AssetCheckSpec(GX_CHECK, asset="layer_segmentation", description=GX_CHECK_TEXT)],
)
def layer_segmentation(
    context: dg.AssetExecutionContext, storage: StorageResource, segmenter: SegmenterResource
) -> dg.MaterializeResult:
    """The six-layer label map of every scan, post-processed to respect anatomy.

    The champion segmenter (loaded by alias) labels every scan; where a reference annotation
    exists, it feeds saliency instead (configurable) and the choice is recorded. Each map is
    exported as ``segmentation.nii`` beside the preprocessed B-mode; per-layer QC goes to
    ``segmentation_qc``. Each scan is committed as soon as it is done. A scan failing QC is
    recorded with ``qc_passed = false`` and saliency skips it; a scan that raises is
    quarantined (stage ``segmentation``); the batch goes on. A scan without a preprocessed
    volume (quarantined while preprocessing) is skipped and listed.
    """
    paths = storage.paths
    warehouse = storage.warehouse()
    model, version = load_champion(Tracking.for_paths(paths), SEGMENTER)
    device = select_device("auto")
    model = model.to(device)
    requested = list(context.partition_keys)
    preprocessed = set(
        warehouse.query(
            "SELECT scan_id FROM preprocessing WHERE scan_id IN (SELECT unnest(?))", [requested]
        )["scan_id"]
    )
    unprocessed = [key for key in requested if key not in preprocessed]
    if unprocessed:
        context.log.warning(
            f"skipped {len(unprocessed)} scans without a preprocessed volume: "
            + ", ".join(unprocessed[:20])
        )
    keys = [key for key in requested if key in preprocessed]
    outcome = run_scans(
        context,
        STAGE,
        keys,
        lambda scan_id: segment_batch_scan(
            scan_id,
            paths.artifacts / "preprocessed" / scan_id,
            model,
            SEGMENTER,
            str(version.version),
            device,
            prefer_reference=segmenter.prefer_reference,
            preview=keys.index(scan_id) < PREVIEWS,
        ),
        warehouse,
    )
    done = [result.metadata for result in outcome.results.values()]
    # Validate what landed (not what was meant to): a duplicated or lost row shows up here.
    suites = validate_segmentation_qc(
        warehouse.query(
            "SELECT * FROM segmentation_qc WHERE scan_id IN (SELECT unnest(?)) ORDER BY ALL",
            [outcome.done],
        ),
        warehouse.query(
            "SELECT * FROM segmentations WHERE scan_id IN (SELECT unnest(?)) ORDER BY ALL",
            [outcome.done],
        ),
    )
    return dg.MaterializeResult(
        metadata={
            "model": f"{SEGMENTER} v{version.version}",
            "n_scans": len(outcome.done),
            "n_reference": sum(m["source"] == "reference" for m in done),
            "n_qc_failed": sum(not m["qc_passed"] for m in done),
            "quarantined": dg.MetadataValue.json(outcome.quarantined),
            "skipped_unpreprocessed": dg.MetadataValue.json(unprocessed[:50]),
            "seconds_total": round(outcome.total_seconds, 1),
            **table_metadata(warehouse, "segmentations", "segmentation_qc"),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=name,
                passed=not outcome.failing(name),
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "failing_scans": dg.MetadataValue.json(outcome.failing(name)[:50]),
                    "n_failing": len(outcome.failing(name)),
                    "layers": ", ".join(layer.key for layer in TISSUE_LAYERS),
                },
            )
            for name in SEGMENTATION_CHECKS
        ]
        + [gx_check_result(GX_CHECK, suites)],
    )
