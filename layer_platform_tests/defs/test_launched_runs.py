"""``run_platform`` through the instance's run launcher (``layer-platform run --workers 2``).

On the instance's default ``dagster.yaml`` (queued coordinator, no daemon: runs are launched
directly by the ``DefaultRunLauncher``, one process each), the tiny definitions of
``living_defs`` loaded by a code server from the environment: two concurrent range runs of a
per-scan stage write exactly the rows one in-process run writes, and no partition is
materialized twice; a run that fails (segmentation with no segmenter) is reported, by run id.
One code server, three launched runs: ~1 min on two loaded cores.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from layer_platform.orchestration.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from layer_platform.orchestration.launcher import CodeLocation, InstanceLauncher, queue_drains
from layer_platform.orchestration.pipeline import run_platform
from layer_platform.orchestration.runner import open_instance, run_job
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, simulate_cohort
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.defs.living_defs import tiny_definitions

#: 4 scans: two ranges of two.
SMALL = SimulationConfig(n_subjects=2, seed=6, annotated_fraction=0.0)
TINY_LOCATION = CodeLocation(module="layer_platform_tests.defs.living_defs")
#: ``processed_at`` differs between any two runs; everything else must not.
COMPARED = "SELECT * EXCLUDE (processed_at, folder) FROM preprocessing ORDER BY scan_id"


def _materializations(instance: dg.DagsterInstance, asset: str) -> Counter[str]:
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
    return Counter(record.partition_key for record in records)


@pytest.mark.slow(seconds=90)
def test_concurrent_range_runs_write_what_one_run_writes_and_failures_are_reported(
    tmp_path: Path,
) -> None:
    one, two = (LayerPaths.under(tmp_path / name).ensure() for name in ("one", "two"))
    for paths in (one, two):
        simulate_cohort(SMALL, paths.landing)
    reference = run_platform(one, defs=tiny_definitions(one), until="preprocess_scans")
    assert [(r.job, len(r.runs), r.failed) for r in reference] == [
        ("ingest", 1, []),
        ("preprocess_scans", 1, []),
    ]

    defs = tiny_definitions(two)
    instance = open_instance(two)
    assert not run_job(defs, instance, "ingest").failed  # in-process: only registers partitions
    keys = sorted(Warehouse(two.warehouse).query("SELECT scan_id FROM scans")["scan_id"])
    assert len(keys) == 4
    with InstanceLauncher.open(instance, two, TINY_LOCATION) as launcher:
        report = run_job(
            defs, instance, "preprocess_scans", partition_keys=keys, workers=2, launcher=launcher
        )
        # segmentation with no segmenter trained: the run fails (a platform failure)
        failing = run_job(defs, instance, "segment_scans", partition_keys=keys, launcher=launcher)

    assert len(report.runs) == 2 and report.failed == []
    first, second = (instance.get_run_record_by_id(run_id) for run_id in report.runs)
    assert {first.dagster_run.status, second.dagster_run.status} == {dg.DagsterRunStatus.SUCCESS}
    # both were in flight at once: the second was launched before the first finished
    assert second.create_timestamp.timestamp() < first.end_time
    ranges = {
        (
            r.dagster_run.tags[ASSET_PARTITION_RANGE_START_TAG],
            r.dagster_run.tags[ASSET_PARTITION_RANGE_END_TAG],
        )
        for r in (first, second)
    }
    assert ranges == {(keys[0], keys[1]), (keys[2], keys[3])}
    assert _materializations(instance, "preprocessed_volume") == Counter(dict.fromkeys(keys, 1))
    pd.testing.assert_frame_equal(
        Warehouse(two.warehouse).query(COMPARED), Warehouse(one.warehouse).query(COMPARED)
    )
    assert len(failing.runs) == 1 and failing.failed == failing.runs
    assert instance.get_run_by_id(failing.runs[0]).status == dg.DagsterRunStatus.FAILURE


def test_runs_are_queued_only_where_the_queue_drains(tmp_path: Path) -> None:
    """Dagster's default coordinator queues; with no daemon alive the queue never drains, so
    ``run`` launches directly. A ``DefaultRunCoordinator`` launches at once: submit to it."""
    queued = tmp_path / "queued"
    queued.mkdir()
    assert not queue_drains(dg.DagsterInstance.from_config(str(queued)))
    direct = tmp_path / "direct"
    direct.mkdir()
    (direct / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
    )
    assert queue_drains(dg.DagsterInstance.from_config(str(direct)))


def test_paths_travel_to_a_child_process_through_the_environment(tmp_path: Path) -> None:
    paths = LayerPaths.from_env(
        {"LAYER_HOME": str(tmp_path), "LAYER_WAREHOUSE": str(tmp_path / "elsewhere.duckdb")}
    )
    assert LayerPaths.from_env(paths.to_env()) == paths


def test_concurrent_runs_need_the_launcher(tmp_path: Path) -> None:
    paths = LayerPaths.under(tmp_path).ensure()
    with pytest.raises(ValueError, match="launcher"):
        run_job(tiny_definitions(paths), open_instance(paths), "ingest", workers=2)
