"""The cohort refresh schedule: skip without growth, retrain what grew past the threshold."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pytest

from layer_platform.defs.resources import StorageResource
from layer_platform.defs.schedules import cohort_refresh_schedule
from layer_platform.segmentation.config import SegmenterConfig
from layer_platform.segmentation.network import build_segmenter
from layer_platform.settings import LayerPaths
from layer_platform.tracking.mlflow_registry import (
    DATA_VERSION_TAG,
    Tracking,
    data_version,
    log_torch_model,
    promote,
    tracked_run,
)
from layer_platform.warehouse.store import Warehouse

TICK = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)


def add_scans(paths: LayerPaths, ids: list[str], *, annotated: bool, label: str | None) -> None:
    """Accepted and preprocessed scans, as the manifest and preprocessing would record them."""
    now = dt.datetime(2026, 1, 1)
    scans = [
        {
            "scan_id": i, "subject_id": f"P-{i}", "label": label, "folder": i, "format": "nii",
            "shape_lateral": 4, "shape_depth": 8, "shape_sweep": 2, "spacing_lateral_mm": 1.0,
            "spacing_depth_mm": 0.25, "spacing_sweep_mm": 1.5, "dtype": "float32",
            "has_swe": True, "has_reference_layers": annotated, "content_hash": f"h-{i}",
            "fingerprint": f"f-{i}", "ingested_at": now,
        }
        for i in ids
    ]  # fmt: skip
    preprocessing = [
        {
            "scan_id": i, "content_hash": f"h-{i}", "folder": i, "shape_lateral": 32,
            "shape_depth": 144, "shape_sweep": 16, "all_finite": True, "processed_at": now,
        }
        for i in ids
    ]  # fmt: skip
    warehouse = Warehouse(paths.warehouse)
    warehouse.replace("scans", scans, key="scan_id", keys=ids)
    warehouse.replace("preprocessing", preprocessing, key="scan_id", keys=ids)


def make_segmenter_champion(paths: LayerPaths, scan_ids: list[str]) -> None:
    """A registered champion whose run records what the real trainer records."""
    tracking = Tracking.for_paths(paths)
    with tracked_run(
        tracking,
        "layer-segmenter",
        "segmenter",
        params={"n_train": len(scan_ids) - 1, "n_val": 1},
        tags={DATA_VERSION_TAG: data_version(scan_ids)},
    ):
        tiny = build_segmenter(SegmenterConfig(channels=(2, 4), strides=(2,)))
        version = log_torch_model(tiny, np.zeros((1, 1, 8, 8, 8), "f4"), "layer-segmenter")
    promote(tracking, "layer-segmenter", version.version, "test champion")


def evaluate(paths: LayerPaths, env: dict[str, str] | None = None):
    schedule = cohort_refresh_schedule(env or {})
    # Both as context managers: an un-exited context leaves Dagster's current instance pointing
    # at a dead one, and every later Definitions load in the process fails.
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=TICK,
            resources={"storage": StorageResource.from_paths(paths)},
        ) as context,
    ):
        return schedule(context)


def selected(request: dg.RunRequest) -> list[str]:
    return sorted(key.to_user_string() for key in request.asset_selection or [])


def test_cron_and_timezone_come_from_the_environment() -> None:
    assert cohort_refresh_schedule({}).cron_schedule == "0 2 * * *"
    custom = cohort_refresh_schedule({"LAYER_REFRESH_CRON": "30 3 * * 0"})
    assert (custom.cron_schedule, custom.execution_timezone) == ("30 3 * * 0", "UTC")
    with pytest.raises(ValueError, match="LAYER_REFRESH_MIN_GROWTH"):
        cohort_refresh_schedule({"LAYER_REFRESH_MIN_GROWTH": "-1"})


def test_empty_warehouse_skips(layer_paths: LayerPaths) -> None:
    result = evaluate(layer_paths)
    assert isinstance(result, dg.SkipReason)
    assert "no scans yet" in result.skip_message


def test_growth_decides_what_is_retrained(layer_paths: LayerPaths) -> None:
    trained = [f"A{i}" for i in range(8)]
    add_scans(layer_paths, trained, annotated=True, label=None)
    make_segmenter_champion(layer_paths, trained)

    unchanged = evaluate(layer_paths)
    assert isinstance(unchanged, dg.SkipReason)
    assert "layer-segmenter: champion trained on these 8 scans" in unchanged.skip_message
    assert "layer-classifier-bmode: no training data" in unchanged.skip_message

    add_scans(layer_paths, ["A8"], annotated=True, label=None)  # 8 → 9 scans: +12%
    below = evaluate(layer_paths, {"LAYER_REFRESH_MIN_GROWTH": "0.2"})
    assert isinstance(below, dg.SkipReason)
    assert "8 → 9 scans (+12%; threshold 20%)" in below.skip_message

    grown = evaluate(layer_paths, {"LAYER_REFRESH_MIN_GROWTH": "0.1"})
    assert isinstance(grown, list) and len(grown) == 1
    assert selected(grown[0]) == ["cohort_manifest", "segmentation_model"]
    assert grown[0].run_key == f"refresh:{TICK.isoformat()}"

    add_scans(layer_paths, ["L1", "L2"], annotated=False, label="MP")  # classifiers: no champion
    both = evaluate(layer_paths)
    assert isinstance(both, list) and len(both) == 1
    assert selected(both[0]) == [
        "cohort_manifest",
        "cohort_split",
        "pain_classifier",
        "segmentation_model",
    ]
    tags = both[0].tags
    assert (
        tags["dagster/asset_partition_range_start"],
        tags["dagster/asset_partition_range_end"],
    ) == (
        "bmode",
        "bmode_swe",
    )
    assert "no champion yet (2 scans)" in tags["layer/refresh"]
