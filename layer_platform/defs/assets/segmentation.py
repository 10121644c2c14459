"""``layer_segmentation``: the champion segmenter's six-layer label map for every scan."""

import datetime as dt
from dataclasses import replace

import dagster as dg

from layer_platform.compute import select_device
from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.assets.preprocessing import preprocessed_volume
from layer_platform.defs.assets.segmentation_model import segmentation_model
from layer_platform.defs.automation import per_scan
from layer_platform.defs.gx_checks import gx_check_result
from layer_platform.defs.resources import SegmenterResource, StorageResource
from layer_platform.imaging.figures import mid_slices_png, png_to_markdown
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.io import Volume, write_volume
from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform.quality.expectations import validate_segmentation_qc
from layer_platform.segmentation.inference import segment_volume
from layer_platform.segmentation.postprocess import enforce_anatomical_order, order_ok_fraction
from layer_platform.segmentation.qc import dice_per_layer, layer_qc, qc_problems
from layer_platform.tracking.mlflow_registry import Tracking, load_champion
from layer_platform.tracking.names import SEGMENTER

SEGMENTATION_CHECKS = {
    "anatomical_order": "layers in order 1 → 6 in at least 99% of columns",
    "all_layers_present": "every one of the six layers is present",
    "plausible_thickness": "mean thickness of each layer within its plausible range",
}


GX_CHECK = "gx_segmentation_tables"
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
    ``segmentation_qc``. A scan failing QC is recorded with ``qc_passed = false`` and saliency
    skips it, while the rest of the batch goes on. A scan without a preprocessed volume (it
    was quarantined while preprocessing) is skipped and listed.
    """
    paths = storage.paths
    warehouse = storage.warehouse()
    tracking = Tracking.for_paths(paths)
    model, version = load_champion(tracking, SEGMENTER)
    device = select_device("auto")
    model = model.to(device)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
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
    summaries, qc_rows, failing = [], [], {name: [] for name in SEGMENTATION_CHECKS}
    for position, scan_id in enumerate(key for key in requested if key in preprocessed):
        folder = paths.artifacts / "preprocessed" / scan_id
        stored = load_preprocessed(folder)
        raw = segment_volume(model, stored.bmode, device)
        predicted = enforce_anatomical_order(raw)
        use_reference = stored.layers is not None and segmenter.prefer_reference
        final = stored.layers if use_reference else predicted
        source = "reference" if use_reference else "model"
        write_volume(folder / "segmentation.nii", Volume(final, stored.spacing))

        rows = layer_qc(final, stored.spacing)
        if stored.layers is not None:
            dice = dice_per_layer(predicted, stored.layers)
            rows = [replace(r, dice=dice[Layer(r.layer_index)]) for r in rows]
        order = order_ok_fraction(final)
        found = qc_problems(rows, order)
        problems = [text for texts in found.values() for text in texts]
        for name, texts in found.items():
            if texts:
                failing[name].append(scan_id)
        if problems:
            context.log.warning(f"scan {scan_id} fails segmentation QC: {'; '.join(problems)}")
        qc_rows += [{"scan_id": scan_id, **r.as_row()} for r in rows]
        summaries.append(
            {
                "scan_id": scan_id,
                "segmentation_source": source,
                "model_name": SEGMENTER,
                "model_version": version.version,
                "raw_order_ok_fraction": order_ok_fraction(raw),
                "order_ok_fraction": order,
                "qc_passed": not problems,
                "problems": "; ".join(problems) or None,
                "path": str(folder / "segmentation.nii"),
                "computed_at": now,
            }
        )
        metadata = {"source": source, "qc_passed": not problems, "order_ok_fraction": order}
        if position < 32:
            png = mid_slices_png(stored.bmode, overlay=final, spacing=stored.spacing, title=scan_id)
            metadata["overlay"] = dg.MetadataValue.md(png_to_markdown(png, scan_id))
        context.add_asset_metadata(metadata, partition_key=scan_id)

    keys = [key for key in requested if key in preprocessed]
    warehouse.replace("segmentation_qc", qc_rows, key="scan_id", keys=keys)
    warehouse.replace("segmentations", summaries, key="scan_id", keys=keys)
    # Validate what landed (not what was meant to): a duplicated or lost row shows up here.
    suites = validate_segmentation_qc(
        warehouse.query(
            "SELECT * FROM segmentation_qc WHERE scan_id IN (SELECT unnest(?)) ORDER BY ALL", [keys]
        ),
        warehouse.query(
            "SELECT * FROM segmentations WHERE scan_id IN (SELECT unnest(?)) ORDER BY ALL", [keys]
        ),
    )
    return dg.MaterializeResult(
        metadata={
            "model": f"{SEGMENTER} v{version.version}",
            "n_scans": len(summaries),
            "n_reference": sum(s["segmentation_source"] == "reference" for s in summaries),
            "n_qc_failed": sum(not s["qc_passed"] for s in summaries),
            "skipped_unpreprocessed": dg.MetadataValue.json(unprocessed[:50]),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=name,
                passed=not bad,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "failing_scans": dg.MetadataValue.json(bad[:50]),
                    "n_failing": len(bad),
                    "layers": ", ".join(layer.key for layer in TISSUE_LAYERS),
                },
            )
            for name, bad in failing.items()
        ]
        + [gx_check_result(GX_CHECK, suites)],
    )
