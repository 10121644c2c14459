"""The stage plan behind ``layer-platform run``: which job to run next, for which scans."""

from __future__ import annotations

from contextlib import ExitStack

import dagster as dg

from layer_platform.classification.modes import INPUT_MODES
from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.orchestration.launcher import CodeLocation, InstanceLauncher
from layer_platform.orchestration.runner import StageReport, open_instance, run_job
from layer_platform.orchestration.stages import STAGES
from layer_platform.settings import LayerPaths
from layer_platform.tracking.mlflow_registry import (
    Tracking,
    champion,
    champion_versions,
    data_version,
    latest_data_version,
)
from layer_platform.tracking.names import SEGMENTER, registered_name
from layer_platform.warehouse.pending import (
    PENDING_PREPROCESSING,
    PENDING_SEGMENTATION,
    TRAINING_DATA,
    pending_saliency,
    summary_pending,
)
from layer_platform.warehouse.queries import ANNOTATED, LABELLED_PREPROCESSED
from layer_platform.warehouse.store import Warehouse


def run_platform(
    paths: LayerPaths,
    *,
    max_batch: int = 500,
    defs: dg.Definitions | None = None,
    until: str | None = None,
    workers: int = 1,
    location: CodeLocation | None = None,
) -> list[StageReport]:
    """Ingest the landing zone, then bring every per-scan and cohort asset up to date.

    Stages run in lineage order (``STAGES``), stop after ``until`` if given, and stop at the
    first platform failure; bad scans do not fail a stage (they are quarantined inside it).
    New scans that change no model (unlabelled, unannotated, champions current) take the
    ``update_scans`` job instead: preprocessing, segmentation and saliency in one run, so an
    arrival pays one run's fixed cost, not three.

    Runs go through the instance's run launcher, ``workers`` at once, on the definitions a code
    server loads from ``location`` (default: the platform's own). Given ``defs`` and no
    ``location``, they execute in this process instead, on ``defs``.
    """
    if until is not None and until not in STAGES:
        raise ValueError(f"unknown stage {until!r}; stages are {', '.join(STAGES)}")
    if defs is None and location is None:
        location = CodeLocation()
    defs = defs or build_definitions(paths=paths)  # the plan: jobs and their partitions
    instance = open_instance(paths)
    with ExitStack() as stack:
        launcher = None
        if location is not None:
            launcher = stack.enter_context(InstanceLauncher.open(instance, paths, location))
        return _run_stages(paths, defs, instance, launcher, max_batch, until, workers)


def _run_stages(
    paths: LayerPaths,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    launcher: InstanceLauncher | None,
    max_batch: int,
    until: str | None,
    workers: int,
) -> list[StageReport]:
    warehouse = Warehouse(paths.warehouse)
    tracking = Tracking.for_paths(paths)
    reports: list[StageReport] = []
    saliency = defs.resources.get("saliency", SaliencyResource())

    def pending(job: str) -> list[str] | None:
        if job == "preprocess_scans":
            return list(warehouse.query(PENDING_PREPROCESSING)["scan_id"])
        if job == "train_segmenter":
            annotated = list(warehouse.query(ANNOTATED)["scan_id"])
            stale = latest_data_version(tracking, SEGMENTER) != data_version(annotated)
            return None if annotated and stale else []
        if job == "segment_scans":
            current = champion(tracking, SEGMENTER)
            if current is None:
                return []
            return list(warehouse.query(PENDING_SEGMENTATION, [current.version])["scan_id"])
        if job == "train_classifiers":
            labelled = list(warehouse.query(LABELLED_PREPROCESSED)["scan_id"])
            version = data_version(labelled)
            stale = [
                mode
                for mode in INPUT_MODES
                if latest_data_version(tracking, registered_name(mode)) != version
            ]
            return stale if labelled else []
        if job in ("compute_saliency", "summarize_saliency"):
            versions = champion_versions(tracking)
            if job == "compute_saliency":
                return pending_saliency(warehouse, versions, saliency.attribution_settings())
            return None if summary_pending(warehouse, versions) else []
        return None

    def changes_no_model(keys: list[str]) -> bool:
        """True when ``keys`` (scans to preprocess) can go through all three per-scan assets in
        one run: both kinds of model have a current champion and no key is training data."""
        return (
            until is None
            and pending("train_segmenter") == []
            and pending("train_classifiers") == []
            and champion(tracking, SEGMENTER) is not None
            and any(champion(tracking, registered_name(mode)) for mode in INPUT_MODES)
            and warehouse.query(TRAINING_DATA, [keys]).empty
        )

    for stage in STAGES:
        keys = pending(stage)
        job = stage
        if stage == "preprocess_scans" and keys and changes_no_model(keys):
            job = "update_scans"  # arrivals: one run instead of three, as the sensor does
        if keys is None or keys:
            reports.append(
                run_job(
                    defs,
                    instance,
                    job,
                    partition_keys=keys,
                    max_batch=max_batch,
                    workers=workers,
                    launcher=launcher,
                )
            )
            if reports[-1].failed:
                break
        if stage == until:
            break
    return reports
