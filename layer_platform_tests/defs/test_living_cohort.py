"""The living cohort end to end, on a tiny materialized cohort (tiny model settings:
``living_defs.py``).

- Arrivals: with ``dagster dev`` (webserver + daemon) running, ``layer-platform simulate
  --arrive 3`` alone makes the three new scans' ``layer_saliency`` rows appear in DuckDB within
  3 minutes, then the cohort summary refreshes; no other scan's partition is re-materialized.
  The run list is printed (``pytest -s``).
- A new champion: after a forced retrain that produces a new champion, every saliency partition
  is stale (the instance's staleness resolver, what the UI shows), the automation requests them
  all in one batch, and after the refresh the summary ranks only the new version while the old
  version's rows stay queryable.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from layer_platform.orchestration.runner import open_instance, run_job
from layer_platform.settings import LayerPaths
from layer_platform.timestamps import utc_now
from layer_platform.tracking.mlflow_registry import CHAMPION, Tracking, champion
from layer_platform.tracking.names import registered_name
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.dagster_internals import (
    CachingStaleStatusResolver,
    LoadingContextForTest,
    StaleStatus,
)
from layer_platform_tests.defs.living_defs import TRAINED_MODE, materialize_tiny_cohort

REPO = Path(__file__).resolve().parents[2]
ARRIVALS = 3
#: The issue's target (3 minutes on this machine) is a measurement the test prints, not an
#: assertion: on a loaded CI machine the same work may take longer. The test fails only when
#: the rows never come (a generous wait).
TARGET_S = 180
WAIT_S = 600
PER_SCAN = ("preprocessed_volume", "layer_segmentation", "layer_saliency")
MODE = TRAINED_MODE
DEV = (sys.executable, "-m", "dagster", "dev")
CLI = (str(Path(sys.executable).parent / "layer-platform"),)


@dataclass
class Living:
    paths: LayerPaths
    defs: dg.Definitions
    instance: dg.DagsterInstance
    warehouse: Warehouse


@pytest.fixture(scope="module")
def living(tmp_path_factory: pytest.TempPathFactory) -> Living:
    """A materialized tiny cohort: every stage through the real assets (1-epoch models)."""
    paths = LayerPaths.under(tmp_path_factory.mktemp("living") / "home").ensure()
    defs = materialize_tiny_cohort(paths)
    return Living(paths, defs, open_instance(paths), Warehouse(paths.warehouse))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _restore_sigint() -> None:
    # A background shell starts children with SIGINT ignored, and `dagster dev` maps SIGTERM
    # onto its SIGINT handling: without this it could not be stopped gracefully.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def dagster_dev(paths: LayerPaths, folder: Path) -> Iterator[Path]:
    """``dagster dev`` (webserver, daemon, code server) on the cohort's instance; yields its log.

    The workspace loads ``living_defs`` (tiny settings); it runs in its own session and is ended
    as a process group (SIGINT, then SIGKILL if it lingers).
    """
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        "      module_name: layer_platform_tests.defs.living_defs\n"
        f"      working_directory: {REPO}\n"
    )
    env = {
        **os.environ,
        "LAYER_HOME": str(paths.home),
        "DAGSTER_HOME": str(paths.dagster_home),
        "OMP_NUM_THREADS": "1",
    }
    log = folder / "dagster-dev.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [*DEV, "-w", str(workspace), "-h", "127.0.0.1", "-p", str(_free_port())],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_restore_sigint,
        )
    try:
        yield log
    finally:
        os.killpg(server.pid, signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            server.wait(timeout=60)
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)  # whatever it left (code server, run workers)


def wait_until(what: str, found: Callable[[], object], timeout: float, log: Path) -> float:
    """Poll ``found`` every second until truthy; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if found():
            return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s; dagster dev said:\n" + tail(log))


def tail(log: Path, n: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:])


@pytest.mark.slow(seconds=220)
def test_arrivals_reach_duckdb_on_their_own(living: Living, tmp_path: Path) -> None:
    paths, instance, warehouse = living.paths, living.instance, living.warehouse
    before = {p.name for p in paths.landing.iterdir() if p.is_dir()}
    last_event = instance.event_log_storage.get_maximum_record_id() or 0
    with dagster_dev(paths, tmp_path) as log:
        # The automation's first evaluation takes the materialized cohort as handled.
        wait_until(
            "the automation sensor's first tick",
            lambda: "Finished auto-materialization tick for layer_automation" in log.read_text(),
            180,
            log,
        )
        arrived_at, started = utc_now(), time.monotonic()
        landed = subprocess.run(
            [*CLI, "simulate", "--arrive", str(ARRIVALS)],
            env={**os.environ, "LAYER_HOME": str(paths.home)},
            capture_output=True,
            text=True,
            check=True,
        )
        new = sorted({p.name for p in paths.landing.iterdir() if p.is_dir()} - before)
        assert len(new) == ARRIVALS, landed.stdout

        def saliency_rows() -> bool:
            found = warehouse.query(
                "SELECT count(DISTINCT scan_id) AS n FROM layer_saliency"
                " WHERE scan_id IN (SELECT unnest(?))",
                [new],
            )
            return int(found["n"][0]) == ARRIVALS

        wait_until("the new scans' layer_saliency rows", saliency_rows, WAIT_S, log)
        rows_s = time.monotonic() - started

        def summary_refreshed() -> bool:
            if not warehouse.table_exists("layer_ranking"):
                return False
            found = warehouse.query("SELECT max(computed_at) AS t FROM layer_ranking")["t"][0]
            return found is not None and found > arrived_at

        wait_until("the summary refresh", summary_refreshed, WAIT_S, log)
        summary_s = time.monotonic() - started

        def idle() -> bool:
            return not instance.get_run_records(
                dg.RunsFilter(
                    statuses=[
                        dg.DagsterRunStatus.QUEUED,
                        dg.DagsterRunStatus.NOT_STARTED,
                        dg.DagsterRunStatus.STARTING,
                        dg.DagsterRunStatus.STARTED,
                    ]
                )
            )

        wait_until("the runs to finish", idle, WAIT_S, log)

    runs = sorted(
        instance.get_run_records(dg.RunsFilter(created_after=arrived_at.replace(tzinfo=dt.UTC))),
        key=lambda r: r.create_timestamp,
    )
    table = [
        f"arrival of {ARRIVALS} scans ({', '.join(new)}): saliency rows after {rows_s:.0f} s"
        f" (target {TARGET_S} s),",
        f"summary refreshed after {summary_s:.0f} s; runs since the arrival:",
    ]
    for record in runs:
        run = record.dagster_run
        assets = sorted(k.to_user_string() for k in run.asset_selection or []) or [run.job_name]
        span = (
            f"{run.tags.get('dagster/asset_partition_range_start')}"
            f"..{run.tags.get('dagster/asset_partition_range_end')}"
            if "dagster/asset_partition_range_start" in run.tags
            else run.tags.get("dagster/partition", "-")
        )
        took = (record.end_time or 0) - (record.start_time or 0)
        offset = record.create_timestamp.replace(tzinfo=None) - arrived_at
        table.append(
            f"  +{offset.total_seconds():5.0f} s  {run.run_id[:8]}  {run.status.value:<8}"
            f" {took:5.1f} s  {','.join(assets):<60} {span}"
        )
        if run.status != dg.DagsterRunStatus.SUCCESS:
            table.extend(f"      {why}" for why in _failures(instance, run.run_id))
    print("\n" + "\n".join(table))
    failed = [r for r in runs if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
    assert not failed, "\n".join(table) + "\ndagster dev said:\n" + tail(log)

    # No other scan re-materialized; the three new scans went through in one batched run.
    for asset in PER_SCAN:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=last_event),
            limit=1000,
        ).records
        assert sorted(r.partition_key for r in records) == new, asset
    batched = [
        r
        for r in runs
        if set(PER_SCAN) <= {k.to_user_string() for k in r.dagster_run.asset_selection or []}
    ]
    assert len(batched) == 1, "one run takes every new scan through all per-scan assets"


def _failures(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Why a run failed: its step and run failure events, as the UI's run page shows them."""
    kinds = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    found = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.event_type not in kinds:
            continue
        error = getattr(event.event_specific_data, "error", None)
        found.append(f"{entry.step_key or 'run'}: {error.to_string() if error else entry.message}")
    return found


def _stale(instance: dg.DagsterInstance, defs: dg.Definitions, asset: str) -> dict[str, str]:
    """Partition → staleness status, as the UI reads it from the instance."""
    resolver = CachingStaleStatusResolver(
        instance, defs.resolve_asset_graph(), LoadingContextForTest(instance)
    )
    key = dg.AssetKey(asset)
    return {
        partition: resolver.get_status(key, partition).value
        for partition in sorted(instance.get_materialized_partitions(key))
    }


@pytest.mark.slow
def test_a_new_champion_marks_saliency_stale_and_the_refresh_recomputes_it(
    living: Living,
) -> None:
    paths, defs, instance, warehouse = living.paths, living.defs, living.instance, living.warehouse
    scans = _stale(instance, defs, "layer_saliency")
    assert scans and set(scans.values()) == {StaleStatus.FRESH.value}
    ticks = dg.evaluate_automation_conditions(defs=defs, instance=instance)

    # Force a retrain that produces a new champion: retire the alias, retrain the mode.
    tracking = Tracking.for_paths(paths)
    name = registered_name(MODE)
    old = str(champion(tracking, name).version)
    tracking.activate().delete_registered_model_alias(name, CHAMPION)
    assert not run_job(defs, instance, "train_classifiers", partition_keys=[MODE]).failed
    new = str(champion(tracking, name).version)
    assert new != old

    stale = _stale(instance, defs, "layer_saliency")
    assert stale == dict.fromkeys(scans, StaleStatus.STALE.value), "every scan, stale"
    assert set(_stale(instance, defs, "layer_segmentation").values()) == {
        StaleStatus.FRESH.value
    }, "the segmentations did not change"

    ticks = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=ticks.cursor)
    saliency = dg.AssetKey("layer_saliency")
    requested = sorted(ticks.get_requested_partitions(saliency))
    assert requested == sorted(scans) and ticks.total_requested == len(scans), "only saliency"
    report = run_job(defs, instance, "compute_saliency", partition_keys=requested)
    assert not report.failed and len(report.runs) == 1, "one batched run"
    assert set(_stale(instance, defs, "layer_saliency").values()) == {StaleStatus.FRESH.value}

    ticks = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=ticks.cursor)
    assert ticks.get_num_requested(dg.AssetKey("layer_ranking")) == 1
    assert not run_job(defs, instance, "summarize_saliency").failed

    ranked = warehouse.query(
        "SELECT DISTINCT model_version FROM layer_ranking WHERE input_mode = $mode", {"mode": MODE}
    )
    assert ranked["model_version"].tolist() == [new], "the summary uses only the new champion"
    kept = warehouse.query(
        "SELECT model_version, count(DISTINCT scan_id) AS n FROM layer_saliency"
        " WHERE input_mode = $mode GROUP BY ALL",
        {"mode": MODE},
    )
    by_version = dict(zip(kept["model_version"], kept["n"], strict=True))
    assert by_version[old] == by_version[new] > 0, "the old version's rows stay queryable"
