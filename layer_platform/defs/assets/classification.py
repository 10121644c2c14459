"""Pain classifiers: subject-level split → cross-validated MONAI models per input mode → MLflow."""

import io

import dagster as dg
import mlflow
from PIL import Image

from layer_platform.classification.cohort import load_scans, split_from_records
from layer_platform.classification.cross_validation import cross_validate
from layer_platform.classification.figures import roc_png
from layer_platform.classification.modes import INPUT_MODES, eligible_scans, make_items
from layer_platform.classification.results import (
    metric_rows,
    metrics_markdown,
    prediction_rows,
    valid_probabilities,
)
from layer_platform.classification.splits import (
    LabelledRow,
    assert_no_subject_leakage,
    make_subject_split,
)
from layer_platform.defs.assets.conventions import check_specs, stage_asset
from layer_platform.defs.assets.preprocessing import preprocessed_volume
from layer_platform.defs.catalog import table_metadata
from layer_platform.defs.mlflow_links import dagster_tags, model_links
from layer_platform.defs.resources import ClassifierResource, StorageResource
from layer_platform.defs.versions import champions_as_data_version
from layer_platform.imaging.figures import png_to_markdown
from layer_platform.statistics import markdown_table
from layer_platform.tracking.champion_score import SPLIT_TAG, challenge_on_oof
from layer_platform.tracking.mlflow_links import log_training_data
from layer_platform.tracking.mlflow_registry import (
    DATA_VERSION_TAG,
    ChildRuns,
    Tracking,
    data_version,
    log_torch_model,
    record_decision,
    tracked_run,
)
from layer_platform.tracking.names import CLASSIFIER_EXPERIMENT, registered_name
from layer_platform.tracking.reference_store import TRAINED_SCANS_ARTIFACT
from layer_platform.warehouse.queries import LABELLED_PREPROCESSED, SPLIT_BY_SITE
from layer_platform.warehouse.store import Replacement

mode_partitions = dg.StaticPartitionsDefinition(list(INPUT_MODES))
#: name → (blocking, description), per asset.
SPLIT_CHECKS = {
    "no_subject_leakage": (True, "no subject appears in two folds or in a fold and the test set")
}
CLASSIFIER_CHECKS = {
    "heldout_auc_floor": (False, "held-out test AUC above the configured floor (warn)"),
    "predictions_valid": (True, "every probability is finite and in [0, 1]"),
}


@stage_asset(
    "classification",
    deps=[preprocessed_volume],
    kinds={"duckdb", "python"},
    code_version="split-v2",
    pool="warehouse",
    check_specs=check_specs("cohort_split", SPLIT_CHECKS),
)
def cohort_split(storage: StorageResource, classifier: ClassifierResource) -> dg.MaterializeResult:
    """Held-out test subjects plus K development folds (``cohort_split`` table), each subject's
    role and fold a salted hash of its id: an arrival never moves an existing subject.

    Both sides of a subject stay together; one split serves every input mode, so modes, and a
    champion and its challenger, are compared on the same folds (``docs/explanation/protocol.md``).
    """
    warehouse = storage.warehouse()
    rows = warehouse.query(LABELLED_PREPROCESSED).to_dict("records")
    split = make_subject_split(
        [LabelledRow(**row) for row in rows],
        n_folds=classifier.n_folds,
        test_fraction=classifier.test_fraction,
        seed=classifier.split_seed,
    )
    records = split.to_records()
    warehouse.replace("cohort_split", records, key=None)
    try:
        assert_no_subject_leakage(split.partitions())
        leakage = ""
    except ValueError as exc:
        leakage = str(exc)
    counts = {part: len(members) for part, members in split.partitions().items()}
    return dg.MaterializeResult(
        metadata={
            "n_scans": len(records),
            "n_subjects": len({r["subject_id"] for r in records}),
            "scans_per_partition": dg.MetadataValue.json(counts),
            "subjects_per_site": dg.MetadataValue.md(
                markdown_table(warehouse.query(SPLIT_BY_SITE))
            ),
            **table_metadata(warehouse, "cohort_split"),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_subject_leakage",
                passed=not leakage,
                metadata={"detail": leakage or "every subject sits in exactly one partition"},
            )
        ],
    )


@stage_asset(
    "classification",
    partitions_def=mode_partitions,
    deps=[cohort_split],
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pytorch", "mlflow", "duckdb"},
    code_version="classifier-v2",
    pool="warehouse",
    check_specs=check_specs("pain_classifier", CLASSIFIER_CHECKS),
)
def pain_classifier(
    context: dg.AssetExecutionContext, storage: StorageResource, classifier: ClassifierResource
) -> dg.MaterializeResult:
    """Cross-validated 3D CNNs per input mode; their folds' ensemble (or a refit, as
    ``ClassifierConfig.final_model`` says) is registered as ``layer-classifier-<mode>``.

    MLflow gets one parent run per mode and a child run per fold (curves, parameters, data and
    code versions, the model with its signature). The ``champion`` alias moves only when the new
    version's out-of-fold AUC beats the champion's on the same development folds
    (``tracking.champion_score``); test subjects are scored once, to report. The data version names
    every mode's champion after the run (one version per run; see ``defs/versions.py``).
    """
    paths = storage.paths
    warehouse = storage.warehouse()
    config = classifier.config()
    split_rows = warehouse.query("SELECT * FROM cohort_split ORDER BY scan_id").to_dict("records")
    split = split_from_records(
        split_rows,
        n_folds=classifier.n_folds,
        test_fraction=classifier.test_fraction,
        seed=classifier.split_seed,
    )
    scans = load_scans(paths.artifacts / "preprocessed", split_rows)
    tracking = Tracking.for_paths(paths)
    cohort_version = data_version([row["scan_id"] for row in split_rows])
    probabilities: list[float] = []
    test_auc: dict[str, float] = {}

    for mode in context.partition_keys:
        eligible, excluded = eligible_scans(scans, mode)
        items = make_items(eligible, mode)
        name = registered_name(mode)
        scan_ids = [item.scan_id for item in items]
        context.log.info(f"{mode}: training on {len(items)} scans ({excluded} excluded: no SWE)")
        with tracked_run(
            tracking,
            CLASSIFIER_EXPERIMENT,
            mode,
            params={
                **config.to_params(),
                **split.to_params(),
                "input_mode": mode,
                "n_scans": len(items),
                "n_excluded_no_swe": excluded,
            },
            tags={
                "layer.input_mode": mode,
                DATA_VERSION_TAG: cohort_version,
                **dagster_tags(context, mode),
            },
        ) as parent:
            log_training_data([r for r in split_rows if r["scan_id"] in set(scan_ids)], name)
            children = ChildRuns(tracking, parent, mode)
            cv = cross_validate(
                items,
                split,
                config,
                on_epoch_end=children.log_epoch,
            )
            children.close()
            mlflow.log_metrics(cv.to_metrics())
            mlflow.log_text("\n".join(scan_ids), TRAINED_SCANS_ARTIFACT)
            png = roc_png(
                {
                    "cross-validation": (cv.oof.y_true, cv.oof.proba),
                    "held-out test": (cv.test.y_true, cv.test.proba),
                },
                title=mode,
            )
            mlflow.log_image(Image.open(io.BytesIO(png)), "roc.png")
            version = log_torch_model(
                cv.model, items[0].x[None], name, tags={SPLIT_TAG: split.scheme()}
            )

        # Metrics and predictions land first (one transaction), so a champion always has them;
        # a model whose predictions are not valid probabilities is never promoted.
        scope = {"input_mode": mode, "model_version": version.version}
        predictions = prediction_rows(mode, name, version.version, cv)
        warehouse.replace_all(
            [
                Replacement(
                    "model_metrics",
                    metric_rows(mode, name, version.version, cv),
                    key="model_name",
                    keys=[name],
                    scope=scope,
                ),
                Replacement("predictions", predictions, key="model_name", keys=[name], scope=scope),
            ]
        )
        if valid_probabilities([row["probability"] for row in predictions]):
            development = [item for item in items if item.scan_id in split.development_ids()]
            reason = challenge_on_oof(
                tracking,
                name,
                version.version,
                cv.oof_metrics.auc,
                split,
                development,
                min_auc=classifier.promotion_floor,
            ).reason
        else:
            reason = "not promoted: its predictions are not all finite probabilities in [0, 1]"
            record_decision(tracking, name, version.version, reason)
        context.log.info(f"{name} v{version.version}: {reason}")
        probabilities.extend(row["probability"] for row in predictions)
        test_auc[mode] = cv.test_metrics.auc
        context.add_asset_metadata(
            {
                "model": f"{name} v{version.version}",
                "heldout_auc": cv.test_metrics.auc,
                "cv_auc": cv.oof_metrics.auc,
                "n_scans": len(items),
                "n_excluded_no_swe": excluded,
                "promotion": reason,
                "metrics": dg.MetadataValue.md(metrics_markdown(cv)),
                "roc": dg.MetadataValue.md(png_to_markdown(png, f"ROC {mode}")),
                **model_links(tracking, version),
            },
            partition_key=mode,
        )

    valid = valid_probabilities(probabilities)
    low = {mode: value for mode, value in test_auc.items() if value < classifier.auc_floor}
    return dg.MaterializeResult(
        data_version=champions_as_data_version(tracking, [registered_name(m) for m in INPUT_MODES]),
        metadata=table_metadata(warehouse, "model_metrics", "predictions"),
        check_results=[
            dg.AssetCheckResult(
                check_name="heldout_auc_floor",
                passed=not low,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"floor": classifier.auc_floor, "below_floor": dg.MetadataValue.json(low)},
            ),
            dg.AssetCheckResult(
                check_name="predictions_valid",
                passed=valid,
                metadata={"n_predictions": len(probabilities)},
            ),
        ],
    )
