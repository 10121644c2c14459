"""Segmentation: a six-layer MONAI UNet trained on annotated scans → a label map for every scan."""

import time

import dagster as dg
import mlflow
import numpy as np

from layer_platform.compute import select_device
from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.assets.preprocessing import preprocessed_volume
from layer_platform.defs.automation import per_scan
from layer_platform.defs.gx_checks import gx_check_result
from layer_platform.defs.per_scan import run_scans
from layer_platform.defs.resources import SegmenterResource, StorageResource
from layer_platform.defs.versions import champions_as_data_version
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform.quality.expectations import validate_segmentation_qc
from layer_platform.segmentation.batch import segment_batch_scan
from layer_platform.segmentation.splits import validation_subjects
from layer_platform.segmentation.training import train_segmenter, validation_dice
from layer_platform.tracking.dagster_links import dagster_tags, log_training_data, model_links
from layer_platform.tracking.mlflow_registry import (
    DATA_VERSION_TAG,
    Tracking,
    data_version,
    load_champion,
    log_torch_model,
    tracked_run,
)
from layer_platform.tracking.promotion import challenge_champion, should_promote

SEGMENTER = "layer-segmenter"

ANNOTATED = """
    SELECT s.scan_id, s.subject_id FROM scans s JOIN preprocessing p USING (scan_id)
    WHERE s.has_reference_layers ORDER BY s.scan_id
"""


def _dice_markdown(dice: dict[Layer, float]) -> str:
    rows = "\n".join(f"| {layer.key} | {value:.3f} |" for layer, value in dice.items())
    mean = float(np.nanmean(list(dice.values())))
    return f"| layer | held-out Dice |\n|---|---|\n{rows}\n| **mean** | **{mean:.3f}** |"


@stage_asset(
    "segmentation",
    deps=[preprocessed_volume],
    kinds={"pytorch", "mlflow"},
    code_version="segmenter-v1",
    check_specs=[
        dg.AssetCheckSpec(
            "heldout_dice",
            asset="segmentation_model",
            description="mean held-out Dice above the configured bar; every layer shown (warn)",
        )
    ],
)
def segmentation_model(
    context: dg.AssetExecutionContext, storage: StorageResource, segmenter: SegmenterResource
) -> dg.MaterializeResult:
    """A MONAI 3D UNet trained on the annotated scans, registered as ``layer-segmenter``.

    Subjects are split into training and validation (no subject in both); MLflow records the
    parameters, per-epoch loss and per-layer validation Dice, the data version and the model.
    The ``champion`` alias moves only when the new model beats the champion on the same
    validation scans. The data version is the champion's version (see ``defs/versions.py``).
    """
    paths = storage.paths
    config = segmenter.config()
    rows = storage.warehouse().query(ANNOTATED).to_dict("records")
    held_out = validation_subjects(
        [r["subject_id"] for r in rows], config.val_fraction, config.seed
    )
    examples = {}
    for row in rows:
        stored = load_preprocessed(paths.artifacts / "preprocessed" / row["scan_id"])
        examples[row["scan_id"]] = (stored.bmode, stored.layers)
    train = [examples[r["scan_id"]] for r in rows if r["subject_id"] not in held_out]
    val = [examples[r["scan_id"]] for r in rows if r["subject_id"] in held_out]
    context.log.info(f"training on {len(train)} annotated scans, validating on {len(val)}")

    tracking = Tracking.for_paths(paths)
    started = time.perf_counter()
    with tracked_run(
        tracking,
        SEGMENTER,
        "segmenter",
        params={**config.to_params(), "n_train": len(train), "n_val": len(val)},
        tags={DATA_VERSION_TAG: data_version(list(examples)), **dagster_tags(context)},
    ):
        roles = [{**r, "role": "val" if r["subject_id"] in held_out else "train"} for r in rows]
        log_training_data(roles, SEGMENTER)
        trained = train_segmenter(
            train,
            val,
            config,
            on_epoch_end=lambda r: mlflow.log_metrics(r.to_metrics(), step=r.epoch),
        )
        seconds = time.perf_counter() - started
        mlflow.log_metric("training_seconds", seconds)
        version = log_torch_model(trained.model, train[0][0][None, None], SEGMENTER)

    dice = trained.val_dice
    mean_dice = float(np.nanmean(list(dice.values())))
    decision = challenge_champion(
        tracking,
        SEGMENTER,
        version.version,
        mean_dice,
        lambda model: float(
            np.nanmean(list(validation_dice(model, val, select_device("auto")).values()))
        ),
        lambda candidate, current: should_promote(
            candidate, current, min_auc=0.0, metric="mean held-out Dice"
        ),
    )
    reason = decision.reason
    context.log.info(f"{SEGMENTER} v{version.version}: {reason}")
    return dg.MaterializeResult(
        data_version=champions_as_data_version(tracking, [SEGMENTER]),
        metadata={
            "model": f"{SEGMENTER} v{version.version}",
            "mean_heldout_dice": mean_dice,
            "dice": dg.MetadataValue.md(_dice_markdown(dice)),
            "training_seconds": round(seconds, 1),
            "n_train_scans": len(train),
            "n_val_scans": len(val),
            "promotion": reason,
            **model_links(tracking, version),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="heldout_dice",
                passed=mean_dice >= segmenter.dice_bar,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "bar": segmenter.dice_bar,
                    "mean": mean_dice,
                    **{f"dice_{layer.key}": float(value) for layer, value in dice.items()},
                },
            )
        ],
    )


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
