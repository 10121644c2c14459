"""``segmentation_model``: a six-layer MONAI UNet trained on the annotated scans → MLflow."""

import time

import dagster as dg
import mlflow
import numpy as np

from layer_platform.compute import select_device
from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.assets.preprocessing import preprocessed_volume
from layer_platform.defs.mlflow_links import dagster_tags, model_links
from layer_platform.defs.resources import SegmenterResource, StorageResource
from layer_platform.defs.versions import champions_as_data_version
from layer_platform.segmentation.qc import dice_markdown
from layer_platform.segmentation.training import train_segmenter, validation_dice
from layer_platform.segmentation.training_data import annotated_data
from layer_platform.tracking.mlflow_links import log_training_data
from layer_platform.tracking.mlflow_registry import (
    DATA_VERSION_TAG,
    Tracking,
    data_version,
    log_torch_model,
    tracked_run,
)
from layer_platform.tracking.names import SEGMENTER
from layer_platform.tracking.promotion import challenge_champion, should_promote
from layer_platform.warehouse.queries import ANNOTATED


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
    data = annotated_data(rows, paths.artifacts / "preprocessed", config.val_fraction, config.seed)
    train, val = data.train, data.val
    context.log.info(f"training on {len(train)} annotated scans, validating on {len(val)}")

    tracking = Tracking.for_paths(paths)
    started = time.perf_counter()
    with tracked_run(
        tracking,
        SEGMENTER,
        "segmenter",
        params={**config.to_params(), "n_train": len(train), "n_val": len(val)},
        tags={DATA_VERSION_TAG: data_version(data.scan_ids), **dagster_tags(context)},
    ):
        log_training_data(data.roles, SEGMENTER)
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
        lambda model, _version: float(
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
            "dice": dg.MetadataValue.md(dice_markdown(dice)),
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
