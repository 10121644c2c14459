"""Pain classifiers: subject-level split → cross-validated MONAI models per input mode → MLflow."""

import datetime as dt
import io

import dagster as dg
import mlflow
import numpy as np
from PIL import Image

from layer_platform.classification.cohort import load_scans, split_from_records
from layer_platform.classification.cross_validation import CVResult, cross_validate
from layer_platform.classification.data import Item
from layer_platform.classification.figures import roc_png
from layer_platform.classification.metrics import auc
from layer_platform.classification.modes import INPUT_MODES, eligible_scans, make_items
from layer_platform.classification.splits import assert_no_subject_leakage, make_subject_split
from layer_platform.classification.training import predict_proba
from layer_platform.compute import select_device
from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.assets.preprocessing import preprocessed_volume
from layer_platform.defs.resources import ClassifierResource, StorageResource
from layer_platform.defs.versions import champions_as_data_version
from layer_platform.imaging.figures import png_to_markdown
from layer_platform.tracking.dagster_links import dagster_tags, log_training_data, model_links
from layer_platform.tracking.mlflow_registry import (
    DATA_VERSION_TAG,
    ChildRuns,
    Tracking,
    data_version,
    log_torch_model,
    record_decision,
    tracked_run,
)
from layer_platform.tracking.promotion import challenge_champion, should_promote
from layer_platform.warehouse.store import Replacement

mode_partitions = dg.StaticPartitionsDefinition(list(INPUT_MODES))
EXPERIMENT = "layer-classifier"

LABELLED_PREPROCESSED = """
    SELECT s.scan_id, s.subject_id, s.label FROM scans s JOIN preprocessing p USING (scan_id)
    WHERE s.label IS NOT NULL ORDER BY s.scan_id
"""


def registered_name(mode: str) -> str:
    return f"layer-classifier-{mode}"


@stage_asset(
    "classification",
    deps=[preprocessed_volume],
    kinds={"duckdb", "python"},
    code_version="split-v1",
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(
            "no_subject_leakage",
            asset="cohort_split",
            blocking=True,
            description="no subject appears in two folds or in a fold and the test set",
        )
    ],
)
def cohort_split(
    context: dg.AssetExecutionContext, storage: StorageResource, classifier: ClassifierResource
) -> dg.MaterializeResult:
    """Subject-level stratified K folds plus held-out test subjects (``cohort_split`` table).

    Both sides of a subject stay together; one split serves every input mode, so modes, and a
    champion and its challenger, are compared on the same held-out subjects.
    """
    warehouse = storage.warehouse()
    rows = warehouse.query(LABELLED_PREPROCESSED).to_dict("records")
    split = make_subject_split(
        [_Labelled(**row) for row in rows],
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
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_subject_leakage",
                passed=not leakage,
                metadata={"detail": leakage or "every subject sits in exactly one partition"},
            )
        ],
    )


class _Labelled:
    """The three fields a split needs, from a warehouse row."""

    def __init__(self, scan_id: str, subject_id: str, label: str):
        self.scan_id, self.subject_id, self.label = scan_id, subject_id, label


def _metric_rows(mode: str, name: str, version: str, cv: CVResult) -> list[dict]:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [{"fold": "cv", "metric": k, "value": v} for k, v in cv.oof_metrics.to_dict().items()]
    rows += [
        {"fold": "test", "metric": k, "value": v} for k, v in cv.test_metrics.to_dict().items()
    ]
    rows.append({"fold": "test", "metric": "heldout_auc", "value": cv.test_metrics.auc})
    rows += [
        {"fold": f"fold_{f.fold}", "metric": "val_auc", "value": f.best_val_auc} for f in cv.folds
    ]
    return [
        {"input_mode": mode, "model_name": name, "model_version": version, "computed_at": now, **r}
        for r in rows
    ]


def _prediction_rows(mode: str, name: str, version: str, cv: CVResult) -> list[dict]:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    parts = [(f"fold_{f.fold}", f.predictions) for f in cv.folds] + [("test", cv.test)]
    return [
        {
            "scan_id": scan_id,
            "input_mode": mode,
            "model_name": name,
            "model_version": version,
            "fold_role": role,
            "probability": float(p),
            "computed_at": now,
        }
        for role, predictions in parts
        for scan_id, p in zip(predictions.scan_ids, predictions.proba, strict=True)
    ]


def _metrics_markdown(cv: CVResult) -> str:
    lines = [
        "| set | AUC (95% CI) | sensitivity | specificity | Brier | scans | subjects |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in (("cross-validation", cv.oof_metrics), ("held-out test", cv.test_metrics)):
        lines.append(
            f"| {name} | {m.auc:.3f} ({m.auc_ci_low:.3f}–{m.auc_ci_high:.3f}) | {m.sensitivity:.2f}"
            f" | {m.specificity:.2f} | {m.brier:.3f} | {m.n_scans} | {m.n_subjects} |"
        )
    return "\n".join(lines)


@stage_asset(
    "classification",
    partitions_def=mode_partitions,
    deps=[cohort_split],
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pytorch", "mlflow", "duckdb"},
    code_version="classifier-v1",
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(
            "heldout_auc_floor",
            asset="pain_classifier",
            description="held-out test AUC above the configured floor (warn)",
        ),
        dg.AssetCheckSpec(
            "predictions_valid",
            asset="pain_classifier",
            blocking=True,
            description="every probability is finite and in [0, 1]",
        ),
    ],
)
def pain_classifier(
    context: dg.AssetExecutionContext, storage: StorageResource, classifier: ClassifierResource
) -> dg.MaterializeResult:
    """Cross-validated 3D CNNs per input mode; their folds' ensemble (or a refit, as
    ``ClassifierConfig.final_model`` says) is registered as ``layer-classifier-<mode>``.

    MLflow gets one parent run per mode and a child run per fold (curves, parameters, data and
    code versions, the model with its signature). The ``champion`` alias moves only when the new
    version beats the current champion on the same held-out subjects. The data version names
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
            EXPERIMENT,
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
            mlflow.log_text("\n".join(scan_ids), "data/scan_ids.txt")
            png = roc_png(
                {
                    "cross-validation": (cv.oof.y_true, cv.oof.proba),
                    "held-out test": (cv.test.y_true, cv.test.proba),
                },
                title=mode,
            )
            mlflow.log_image(Image.open(io.BytesIO(png)), "roc.png")
            version = log_torch_model(cv.model, items[0].x[None], name)

        # Metrics and predictions land first (one transaction), so a champion always has them;
        # a model whose predictions are not valid probabilities is never promoted.
        scope = {"input_mode": mode, "model_version": version.version}
        predictions = _prediction_rows(mode, name, version.version, cv)
        warehouse.replace_all(
            [
                Replacement(
                    "model_metrics",
                    _metric_rows(mode, name, version.version, cv),
                    key="model_name",
                    keys=[name],
                    scope=scope,
                ),
                Replacement("predictions", predictions, key="model_name", keys=[name], scope=scope),
            ]
        )
        if _valid_probabilities([row["probability"] for row in predictions]):
            test_items = [item for item in items if item.scan_id in split.test_ids()]
            reason = challenge_champion(
                tracking,
                name,
                version.version,
                cv.test_metrics.auc,
                lambda model, held_out=test_items: _heldout_auc(model, held_out),
                lambda candidate, current: should_promote(
                    candidate, current, min_auc=classifier.promotion_floor
                ),
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
                "metrics": dg.MetadataValue.md(_metrics_markdown(cv)),
                "roc": dg.MetadataValue.md(png_to_markdown(png, f"ROC {mode}")),
                **model_links(tracking, version),
            },
            partition_key=mode,
        )

    valid = _valid_probabilities(probabilities)
    low = {mode: value for mode, value in test_auc.items() if value < classifier.auc_floor}
    return dg.MaterializeResult(
        data_version=champions_as_data_version(tracking, [registered_name(m) for m in INPUT_MODES]),
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


def _valid_probabilities(values: list[float]) -> bool:
    array = np.asarray(values, dtype=float)
    return bool(np.isfinite(array).all() and ((array >= 0) & (array <= 1)).all())


def _heldout_auc(model, test_items: list[Item]) -> float:
    """The champion's AUC on the challenger's held-out subjects."""
    proba = predict_proba(model, test_items, select_device("auto"))
    return auc([item.y for item in test_items], proba)
