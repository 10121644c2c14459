"""The documented Postgres-backed instance (deploy/postgres/dagster.yaml) runs the real assets.

A throwaway PostgreSQL server is started on loopback; the instance file is used exactly as a
user would (``LAYER_DAGSTER_YAML`` + ``DAGSTER_PG_*``), and the intake and preprocessing jobs
materialize a tiny simulated cohort, one of whose scans is broken, through Dagster's
multiprocess executor (each step in its own process, reaching the instance through its
config). Then the runs, the event log, the scan partitions and the concurrency pool are looked
up in PostgreSQL itself, and no sqlite storage may exist.

Skips only where no PostgreSQL server binaries are installed (``.ci/run`` installs Debian's).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from layer_platform.defs.definitions import build_definitions
from layer_platform.orchestration.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from layer_platform.orchestration.runner import open_instance
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, simulate_cohort
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.deploy.postgres_server import (
    DEBIAN_BIN_GLOB,
    PostgresServer,
    find_server_binaries,
    postgres_server,
)

INSTANCE_YAML = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "dagster.yaml"
DB_NAME = "layer_dagster"
MULTIPROCESS = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}

pytestmark = pytest.mark.slow


def ingest_job() -> dg.JobDefinition:
    """Rebuilt in each step process from the environment (``LAYER_HOME``)."""
    return build_definitions().resolve_job_def("ingest")


def preprocess_job() -> dg.JobDefinition:
    return build_definitions().resolve_job_def("preprocess_scans")


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    binaries = find_server_binaries()
    if binaries is None:
        pytest.skip(
            "NO POSTGRESQL SERVER BINARIES (initdb, pg_ctl) on PATH or under "
            f"{DEBIAN_BIN_GLOB}: the Postgres-backed Dagster instance is NOT TESTED here. "
            "Install Debian's package (`apt-get install postgresql`; .ci/run does this)."
        )
    with postgres_server(binaries) as running:
        con = psycopg2.connect(running.dsn())
        con.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
        con.cursor().execute(f"CREATE DATABASE {DB_NAME}")  # a constant, not input
        con.close()
        yield running


def _cohort_with_a_broken_scan(paths: LayerPaths) -> int:
    """Six simulated scans, one with its B-mode cut short; returns the number of good ones."""
    truth = simulate_cohort(SimulationConfig(n_subjects=3, seed=4), paths.landing)
    broken = next(sorted(paths.landing.iterdir())[0].glob("bmode.*"))
    broken.write_bytes(broken.read_bytes()[:200])
    return len(truth.scans) - 1


def _count(server: PostgresServer, sql: str, *params: object) -> int:
    with psycopg2.connect(server.dsn(DB_NAME)) as con, con.cursor() as cursor:
        cursor.execute(sql, params)
        value = cursor.fetchone()[0]
    con.close()
    return int(value)


def test_assets_materialize_on_a_postgres_instance_with_the_multiprocess_executor(
    server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = LayerPaths.under(tmp_path / "layer_home").ensure()
    for name, value in {
        "LAYER_HOME": str(paths.home),  # step processes rebuild the definitions from it
        "LAYER_DAGSTER_YAML": str(INSTANCE_YAML),
        "DAGSTER_PG_HOST": server.host,
        "DAGSTER_PG_PORT": str(server.port),
        "DAGSTER_PG_DB": DB_NAME,
        "DAGSTER_PG_USER": server.user,
        "DAGSTER_PG_PASSWORD": server.password,
    }.items():
        monkeypatch.setenv(name, value)
    n_good = _cohort_with_a_broken_scan(paths)

    instance = open_instance(paths)
    storages = [instance.run_storage, instance.event_log_storage, instance.schedule_storage]
    assert [type(s).__name__ for s in storages] == [
        "PostgresRunStorage",
        "PostgresEventLogStorage",
        "PostgresScheduleStorage",
    ]
    assert server.password not in (paths.dagster_home / "dagster.yaml").read_text()

    ingest = dg.execute_job(dg.reconstructable(ingest_job), instance, run_config=MULTIPROCESS)
    assert ingest.success
    keys = preprocess_job().partitions_def.get_partition_keys(dynamic_partitions_store=instance)
    assert len(keys) == n_good, "the broken scan is quarantined, never a partition"
    preprocess = dg.execute_job(
        dg.reconstructable(preprocess_job),
        instance,
        run_config=MULTIPROCESS,
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
    )
    assert preprocess.success

    # each step ran in a worker process of its own, not in this one
    for run_id in (ingest.run_id, preprocess.run_id):
        workers = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED)
        assert len(workers) == 1, f"run {run_id}: one step, one worker process"
        started = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        assert started and all(e.dagster_event.pid != os.getpid() for e in started)

    # the good scans are materialized, exactly, and the broken one is in the quarantine
    materialized = instance.get_materialized_partitions(dg.AssetKey("preprocessed_volume"))
    assert materialized == set(keys)
    warehouse = Warehouse(paths.warehouse)
    assert int(warehouse.query("SELECT count(*) n FROM preprocessing")["n"].iloc[0]) == n_good
    assert len(warehouse.query("SELECT folder FROM quarantine")) == 1

    # ... and Dagster's own records are in PostgreSQL, not in sqlite files under DAGSTER_HOME
    assert _count(server, "SELECT count(*) FROM runs") == 2
    assert _count(server, "SELECT count(DISTINCT run_id) FROM event_logs") == 2
    assert (
        _count(
            server,
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = %s AND asset_key LIKE %s",
            "ASSET_MATERIALIZATION",
            "%preprocessed_volume%",
        )
        == n_good
    )
    assert _count(server, "SELECT count(*) FROM dynamic_partitions") == n_good
    assert _count(server, "SELECT count(*) FROM concurrency_limits") >= 1, "the warehouse pool"
    assert sorted(p.name for p in paths.dagster_home.rglob("*.db")) == []
