"""The scheduled cohort refresh: re-validate the manifest, retrain the models the cohort outgrew.

Each tick compares the training sets the trainers would read now (the same queries the assets
and ``layer-platform run`` use) with the champion's: its data version (tag
``layer.data_version``) says whether anything changed, and the size of its training set
(from its MLflow run's parameters) says by how much the cohort grew. A model is retrained only
when its training set changed and grew by at least ``LAYER_REFRESH_MIN_GROWTH`` (or when it has
no champion yet); promotion stays the assets' job (a champion moves only if the new version wins
on held-out subjects). Launching the ``cohort_refresh`` job from the UI is the on-demand path.
"""

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

from layer_platform.classification.modes import INPUT_MODES
from layer_platform.defs.jobs import EXECUTOR
from layer_platform.defs.resources import StorageResource
from layer_platform.orchestration.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from layer_platform.orchestration.runner import contiguous_ranges
from layer_platform.tracking.mlflow_registry import (
    Tracking,
    champion,
    champion_data_version,
    data_version,
    latest_data_version,
)
from layer_platform.tracking.names import SEGMENTER, registered_name
from layer_platform.warehouse.queries import ANNOTATED, LABELLED_PREPROCESSED

DEFAULT_CRON = "0 2 * * *"
DEFAULT_MIN_GROWTH = 0.1

#: Run parameters whose sum is the size of a champion's training set, per kind of model.
SEGMENTER_SIZE_PARAMS = ("n_train", "n_val")
CLASSIFIER_SIZE_PARAMS = ("n_scans", "n_excluded_no_swe")

cohort_refresh_job = dg.define_asset_job(
    "cohort_refresh",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.assets(
        "cohort_manifest", "segmentation_model", "cohort_split", "pain_classifier"
    ),
    description="Re-validate the manifest (GX) and retrain the models whose training data grew;"
    " launched by the cohort_refresh schedule, or by hand to retrain on demand.",
)


@dataclass(frozen=True)
class RefreshDecision:
    """Whether one registered model is retrained on this tick, and why."""

    model: str
    retrain: bool
    reason: str


def champion_training_size(tracking: Tracking, name: str, params: Sequence[str]) -> int | None:
    """How many scans the champion of ``name`` was trained on (None: no champion, or unknown)."""
    version = champion(tracking, name)
    if version is None or not version.run_id:
        return None
    logged = tracking.activate().get_run(version.run_id).data.params
    if not all(p in logged for p in params):
        return None
    return sum(int(logged[p]) for p in params)


def decide(
    tracking: Tracking, name: str, scan_ids: Sequence[str], params: Sequence[str], min_growth: float
) -> RefreshDecision:
    """Retrain ``name`` when its training set changed and grew by ``min_growth`` or more."""
    if not scan_ids:
        return RefreshDecision(name, False, "no training data")
    if champion_data_version(tracking, name) == data_version(scan_ids):
        return RefreshDecision(name, False, f"champion trained on these {len(scan_ids)} scans")
    if latest_data_version(tracking, name) == data_version(scan_ids):
        text = f"latest version, not promoted, trained on these {len(scan_ids)} scans"
        return RefreshDecision(name, False, text)
    before = champion_training_size(tracking, name, params)
    if before is None:
        return RefreshDecision(name, True, f"no champion yet ({len(scan_ids)} scans)")
    growth = (len(scan_ids) - before) / max(before, 1)
    text = f"{before} → {len(scan_ids)} scans ({growth:+.0%}; threshold {min_growth:.0%})"
    return RefreshDecision(name, growth >= min_growth, text)


def refresh_decisions(storage: StorageResource, min_growth: float) -> list[RefreshDecision]:
    """The segmenter's and each classifier's decision, from the warehouse and the registry."""
    warehouse = storage.warehouse()
    tracking = Tracking.for_paths(storage.paths)
    if not warehouse.table_exists("preprocessing"):
        return []
    annotated = list(warehouse.query(ANNOTATED)["scan_id"])
    labelled = list(warehouse.query(LABELLED_PREPROCESSED)["scan_id"])
    decisions = [decide(tracking, SEGMENTER, annotated, SEGMENTER_SIZE_PARAMS, min_growth)]
    for mode in INPUT_MODES:
        name = registered_name(mode)
        decisions.append(decide(tracking, name, labelled, CLASSIFIER_SIZE_PARAMS, min_growth))
    return decisions


def refresh_requests(decisions: Sequence[RefreshDecision], run_key: str) -> list[dg.RunRequest]:
    """One run per contiguous range of classifier modes; the manifest and segmenter ride along
    in the first (each step still waits for the ``warehouse`` pool)."""
    retrain = {d.model for d in decisions if d.retrain}
    modes = [m for m in INPUT_MODES if registered_name(m) in retrain]
    first: list[dg.AssetKey] = [dg.AssetKey("cohort_manifest")]
    if SEGMENTER in retrain:
        first.append(dg.AssetKey("segmentation_model"))
    tags = {"layer/refresh": "; ".join(f"{d.model}: {d.reason}" for d in decisions)[:4000]}
    if not modes:
        return [dg.RunRequest(run_key=run_key, asset_selection=first, tags=tags)]
    requests = []
    for position, (start, end) in enumerate(contiguous_ranges(INPUT_MODES, set(modes), 99)):
        classifiers = [dg.AssetKey("cohort_split"), dg.AssetKey("pain_classifier")]
        requests.append(
            dg.RunRequest(
                run_key=f"{run_key}:{start}-{end}",
                asset_selection=(first if position == 0 else []) + classifiers,
                tags={
                    **tags,
                    ASSET_PARTITION_RANGE_START_TAG: start,
                    ASSET_PARTITION_RANGE_END_TAG: end,
                },
            )
        )
    return requests


def cohort_refresh_schedule(env: Mapping[str, str] | None = None) -> dg.ScheduleDefinition:
    """The nightly refresh; ``LAYER_REFRESH_CRON`` (default ``0 2 * * *``, UTC) and
    ``LAYER_REFRESH_MIN_GROWTH`` (default 0.1 = 10% more scans than the champion saw)."""
    env = os.environ if env is None else env
    cron = env.get("LAYER_REFRESH_CRON") or DEFAULT_CRON
    min_growth = float(env.get("LAYER_REFRESH_MIN_GROWTH") or DEFAULT_MIN_GROWTH)
    if min_growth < 0:
        raise ValueError(f"LAYER_REFRESH_MIN_GROWTH must be ≥ 0 (a fraction), got {min_growth}")

    @dg.schedule(
        name="cohort_refresh",
        job=cohort_refresh_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Retrain models whose training data grew by ≥ {min_growth:.0%} ({cron} UTC).",
    )
    def cohort_refresh(
        context: dg.ScheduleEvaluationContext, storage: StorageResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        decisions = refresh_decisions(storage, min_growth)
        for decision in decisions:
            context.log.info(f"{decision.model}: {decision.reason}")
        if not any(d.retrain for d in decisions):
            reasons = "; ".join(f"{d.model}: {d.reason}" for d in decisions) or "no scans yet"
            return dg.SkipReason(f"no model's training data grew enough: {reasons}")
        tick = context.scheduled_execution_time
        return refresh_requests(decisions, f"refresh:{tick.isoformat() if tick else 'now'}")

    return cohort_refresh
