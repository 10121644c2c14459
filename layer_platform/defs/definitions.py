"""Assemble the Dagster ``Definitions``: assets, checks, jobs, sensors, schedules, resources."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from layer_platform.defs.assets.classification import cohort_split, pain_classifier
from layer_platform.defs.assets.ingestion import cohort_manifest
from layer_platform.defs.assets.preprocessing import preprocessed_volume
from layer_platform.defs.assets.saliency import layer_saliency
from layer_platform.defs.assets.saliency_summary import saliency_summary
from layer_platform.defs.assets.segmentation import layer_segmentation
from layer_platform.defs.assets.segmentation_model import segmentation_model
from layer_platform.defs.automation import automation_sensor
from layer_platform.defs.jobs import (
    compute_saliency_job,
    ingest_job,
    preprocess_job,
    segment_scans_job,
    summarize_saliency_job,
    train_classifiers_job,
    train_segmenter_job,
    update_scans_job,
)
from layer_platform.defs.resources import build_resources
from layer_platform.defs.schedules import cohort_refresh_schedule
from layer_platform.defs.sensors import landing_sensor
from layer_platform.settings import LayerPaths


def build_definitions(
    env: Mapping[str, str] | None = None, *, paths: LayerPaths | None = None
) -> dg.Definitions:
    """Definitions bound to ``paths`` (default: resolved from ``env`` / the environment).

    The default executor runs a whole run in one process: the automation's batched runs (and
    the UI's "Materialize") then pay one process start (~10 s on two cores) instead of one per
    step; the steps are sequential anyway (one ``warehouse`` pool slot). The named jobs keep
    Dagster's default executor (``defs/jobs.py``).
    """
    return dg.Definitions(
        assets=[
            cohort_manifest,
            preprocessed_volume,
            segmentation_model,
            layer_segmentation,
            cohort_split,
            pain_classifier,
            layer_saliency,
            saliency_summary,
        ],
        jobs=[
            ingest_job,
            preprocess_job,
            train_segmenter_job,
            segment_scans_job,
            train_classifiers_job,
            compute_saliency_job,
            summarize_saliency_job,
            update_scans_job,
        ],
        sensors=[landing_sensor, automation_sensor],
        schedules=[cohort_refresh_schedule(env)],
        resources=build_resources(env, paths=paths),
        executor=dg.in_process_executor,
    )
