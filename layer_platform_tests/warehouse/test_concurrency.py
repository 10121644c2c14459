"""Concurrent writers never fail on DuckDB's file lock, and an analyst can read throughout.

Two forms of the same claim:

- reduced (fast): 8 processes each replace their own partitions through ``Warehouse.replace``
  while a reader process loops ``Warehouse.query``;
- slow: 8 Dagster runs requested at once by a sensor on a temporary instance with the project's
  ``dagster.yaml``, launched by the real daemon (queued run coordinator, default run launcher,
  up to 4 runs at once), writing at the same time, again with a reader loop running throughout.

Both print the lock figures they measured (``pytest -s`` shows them).
"""

import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from layer_platform.orchestration.runner import prepare_dagster_home
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.store import Warehouse

REPO = Path(__file__).resolve().parents[2]
N_WRITERS = 8
WRITES_PER_WRITER = 5
LAYERS_PER_SCAN = 6
PROBE_WAREHOUSE_ENV = "LAYER_PROBE_WAREHOUSE"


def qc_rows(scan_id: str) -> list[dict]:
    """One scan's ``segmentation_qc`` rows (the shape a real segmentation writes)."""
    return [
        {
            "scan_id": scan_id,
            "layer": f"layer_{index}",
            "layer_index": index,
            "n_voxels": 100 * index,
            "volume_ml": 0.1 * index,
            "thickness_mean_mm": 1.0,
            "thickness_sd_mm": 0.1,
            "dice": None,
            "order_ok": True,
        }
        for index in range(1, LAYERS_PER_SCAN + 1)
    ]


def count_rows(warehouse: Warehouse) -> tuple[int, int]:
    found = warehouse.query(
        "SELECT count(*) AS n, count(DISTINCT scan_id) AS s FROM segmentation_qc"
    )
    return int(found["n"].iloc[0]), int(found["s"].iloc[0])


def _writer(path: str, writer: int, results: mp.Queue) -> None:
    warehouse = Warehouse(Path(path))
    seconds, failures = [], []
    for index in range(WRITES_PER_WRITER):
        scan_id = f"w{writer}-s{index}"
        started = time.perf_counter()
        try:
            # Twice: the second replace must not duplicate the first one's rows.
            for _ in range(2):
                warehouse.replace(
                    "segmentation_qc", qc_rows(scan_id), key="scan_id", keys=[scan_id]
                )
        except duckdb.Error as exc:
            failures.append(str(exc)[:200])
        seconds.append(time.perf_counter() - started)
    results.put(("writer", seconds, failures))


class ReaderLoop:
    """An analyst's query loop through ``Warehouse.query`` (short read-only connections)."""

    def __init__(self, path: Path):
        self.warehouse = Warehouse(path)
        self.latencies: list[float] = []
        #: ``time.monotonic()`` at each query's end: one clock for every process on the host.
        self.finished_at: list[float] = []
        self.errors: list[str] = []
        self.counts: list[int] = []

    def run(self, stop: Any) -> None:
        """Query until ``stop`` (a threading or multiprocessing event) is set."""
        while not stop.is_set():
            started = time.perf_counter()
            try:
                self.counts.append(count_rows(self.warehouse)[0])
            except Exception as exc:  # an analyst's failure of any kind is what is measured
                self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            self.latencies.append(time.perf_counter() - started)
            self.finished_at.append(time.monotonic())
            time.sleep(0.02)

    def summary(self) -> str:
        ordered = sorted(self.latencies) or [0.0]
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        return (
            f"reader: {len(self.latencies)} queries, {len(self.errors)} errors, latency p50"
            f" {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms,"
            f" max {ordered[-1] * 1000:.0f} ms"
        )


def _reader(path: str, stop: Any, results: mp.Queue) -> None:
    loop = ReaderLoop(Path(path))
    loop.run(stop)
    results.put(("reader", loop, loop.summary()))


def test_eight_writer_processes_and_a_reader_loop(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    Warehouse(path).ensure_schema()
    # fork: the workers start in milliseconds (no connection is open in this process now)
    ctx = mp.get_context("fork")
    results, stop = ctx.Queue(), ctx.Event()
    reader = ctx.Process(target=_reader, args=(str(path), stop, results))
    reader.start()
    writing = time.monotonic()
    writers = [ctx.Process(target=_writer, args=(str(path), w, results)) for w in range(N_WRITERS)]
    for process in writers:
        process.start()
    outcomes = [results.get(timeout=240) for _ in writers]
    written = time.monotonic()
    wall = written - writing
    stop.set()
    _, loop, reader_summary = results.get(timeout=60)
    for process in [*writers, reader]:
        process.join(timeout=30)

    seconds = sorted(s for _, writes, _ in outcomes for s in writes)
    failures = [f for _, _, found in outcomes for f in found]
    print(
        f"\n{N_WRITERS} writer processes x {WRITES_PER_WRITER} scans (2 replaces each) in"
        f" {wall:.1f} s; per scan p50 {statistics.median(seconds) * 1000:.0f} ms,"
        f" max {seconds[-1] * 1000:.0f} ms; lock failures {len(failures)}\n{reader_summary}"
    )
    assert failures == []
    assert loop.errors == [], loop.errors[:3]
    # a reader query answered while the writers wrote (a count of queries would depend on speed)
    assert any(writing < t < written for t in loop.finished_at), reader_summary
    expected = N_WRITERS * WRITES_PER_WRITER
    stored = Warehouse(path).query("SELECT scan_id, count(*) AS n FROM segmentation_qc GROUP BY 1")
    # which scans went missing (or doubled) says whose write was lost, should it ever happen
    wrong = {f"w{w}-s{i}" for w in range(N_WRITERS) for i in range(WRITES_PER_WRITER)} ^ set(
        stored.loc[stored["n"] == LAYERS_PER_SCAN, "scan_id"]
    )
    found = (int(stored["n"].sum()), len(stored))  # count_rows, from the same read
    assert found == (expected * LAYERS_PER_SCAN, expected), sorted(wrong)
    assert all(0 <= n <= expected * LAYERS_PER_SCAN for n in loop.counts)


def test_a_held_reader_delays_a_writer_instead_of_failing_it(tmp_path: Path) -> None:
    """An analyst holding a read-only connection blocks writers; they wait, then proceed."""
    path = tmp_path / "warehouse.duckdb"
    Warehouse(path).ensure_schema()
    held = 1.5
    script = (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1], read_only=True);"
        " print('open', flush=True); time.sleep(float(sys.argv[2])); con.close()"
    )
    analyst = subprocess.Popen(
        [sys.executable, "-c", script, str(path), str(held)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert analyst.stdout is not None and analyst.stdout.readline().strip() == "open"
        started = time.perf_counter()
        Warehouse(path).replace("segmentation_qc", qc_rows("S1"), key="scan_id", keys=["S1"])
        waited = time.perf_counter() - started
    finally:
        analyst.wait(timeout=30)
    print(f"\nwriter waited {waited:.2f} s for an analyst's read-only connection held {held} s")
    assert waited > 0.5
    assert count_rows(Warehouse(path)) == (LAYERS_PER_SCAN, 1)


def test_snapshot_gives_analysts_a_private_copy(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    warehouse.replace("segmentation_qc", qc_rows("S1"), key="scan_id", keys=["S1"])
    copy = warehouse.snapshot(tmp_path / "analyst" / "copy.duckdb")
    held = duckdb.connect(str(copy), read_only=True)  # held for as long as the analyst likes
    try:
        warehouse.replace("segmentation_qc", qc_rows("S2"), key="scan_id", keys=["S2"])
        assert held.execute("SELECT count(*) FROM segmentation_qc").fetchone() == (LAYERS_PER_SCAN,)
    finally:
        held.close()
    assert count_rows(warehouse) == (2 * LAYERS_PER_SCAN, 2)
    assert count_rows(Warehouse(warehouse.snapshot(copy))) == (2 * LAYERS_PER_SCAN, 2)


# --- 8 concurrent Dagster runs through the daemon -------------------------------------------

PROBE_KEYS = [f"scan-{i}" for i in range(N_WRITERS)]


# No `pool` here, on purpose: with the project's `warehouse` pool (limit 1) the queued run
# coordinator does not even dequeue a run whose step needs a full pool (measured: the 8 runs
# then go one after the other, 0 lock failures). Without it the runs really write at once, and
# only the warehouse's own lock handling keeps them from failing.
@dg.asset(
    partitions_def=dg.StaticPartitionsDefinition(PROBE_KEYS),
    group_name="probe",
    kinds={"duckdb"},
)
def warehouse_probe(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Writes one scan's rows the way the real assets do: replace by key, several times.

    Then it waits (up to 15 s) until another probe run is in progress or none is left: on two
    cores run start-up (~5 s) is as long as a probe run, and without this wait the daemon's
    queue can end up running the burst one run after the other.
    """
    warehouse = Warehouse(Path(os.environ[PROBE_WAREHOUSE_ENV]))
    scan_id = context.partition_key
    for _ in range(WRITES_PER_WRITER):
        warehouse.replace("segmentation_qc", qc_rows(scan_id), key="scan_id", keys=[scan_id])
        time.sleep(0.1)
    _wait_for_a_peer(context.instance, context.run_id, timeout=15)
    return dg.MaterializeResult(metadata={"writes": WRITES_PER_WRITER})


def _wait_for_a_peer(instance: dg.DagsterInstance, run_id: str, timeout: float) -> None:
    # STARTING (the run's process is still importing) does not count as in progress.
    waiting = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
    ]
    running = [dg.DagsterRunStatus.STARTED]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        others = [
            r
            for r in instance.get_runs(dg.RunsFilter(job_name="warehouse_probe_job"))
            if r.run_id != run_id and r.status in waiting + running
        ]
        if not others or any(r.status in running for r in others):
            return
        time.sleep(0.2)


# In-process executor: one Python process per run instead of two (launch cost dominates here).
probe_job = dg.define_asset_job(
    "warehouse_probe_job", selection=[warehouse_probe], executor_def=dg.in_process_executor
)


@dg.sensor(job=probe_job, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def probe_burst(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Requests all eight runs on its first tick (as a landing burst or a backfill would)."""
    if context.cursor:
        return dg.SkipReason("burst already requested")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=key, partition_key=key) for key in PROBE_KEYS],
        cursor="done",
    )


probe_defs = dg.Definitions(assets=[warehouse_probe], jobs=[probe_job], sensors=[probe_burst])


@pytest.mark.slow
def test_eight_concurrent_dagster_runs_through_the_daemon(tmp_path: Path) -> None:
    paths = LayerPaths.under(tmp_path / "home").ensure()
    home = prepare_dagster_home(paths)  # the project's dagster.yaml: pools, run queue
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        PROBE_WAREHOUSE_ENV: str(paths.warehouse),
        "PYTHONPATH": str(REPO),
    }
    Warehouse(paths.warehouse).ensure_schema()
    dg.DagsterInstance.from_config(str(home)).dispose()  # storage schema made before the daemon
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run",
            "-m",
            __name__,
            "-a",
            "probe_defs",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: ended as a group below
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    stop = threading.Event()
    loop = ReaderLoop(paths.warehouse)
    reader = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    reader.start()
    started = time.perf_counter()
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = []
            while time.perf_counter() - started < 170:
                runs = instance.get_runs(dg.RunsFilter(job_name=probe_job.name))
                if len(runs) == N_WRITERS and all(r.is_finished for r in runs):
                    break
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                time.sleep(1)
            wall = time.perf_counter() - started
            statuses = sorted(r.status.value for r in runs)
            overlap = _max_overlap(_run_intervals(instance, runs))
            steps = _max_overlap(_step_intervals(instance, runs))
            errors = _run_errors(instance, runs)
    finally:
        stop.set()
        reader.join(timeout=30)
        _end_group(daemon)
        log.close()
    print(
        f"\n{len(runs)} runs through the daemon in {wall:.1f} s (from daemon start), at most"
        f" {overlap} in progress at once, at most {steps} writing steps at once; statuses"
        f" {statuses}\n{loop.summary()}"
    )
    assert statuses == ["SUCCESS"] * N_WRITERS, errors
    assert count_rows(Warehouse(paths.warehouse)) == (N_WRITERS * LAYERS_PER_SCAN, N_WRITERS)
    assert loop.errors == [], loop.errors[:3]
    assert overlap > 1, "the runs overlapped in time"
    assert steps > 1, "the writing steps overlapped in time"


def _end_group(process: subprocess.Popen) -> None:
    """End the daemon and the run workers and code server it started (its process group)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _run_errors(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> list[str]:
    """The failure messages of runs that did not succeed (to make a failure readable)."""
    found = []
    for run in runs:
        if run.status == dg.DagsterRunStatus.SUCCESS:
            continue
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is not None and event.is_failure:
                found.append(f"{run.tags.get('dagster/partition')}: {entry.message[:300]}")
                if event.event_specific_data is not None:
                    found.append(str(getattr(event.event_specific_data, "error", ""))[:1500])
    return found


def _run_intervals(
    instance: dg.DagsterInstance, runs: list[dg.DagsterRun]
) -> list[tuple[float, float]]:
    records = instance.get_run_records(dg.RunsFilter(run_ids=[r.run_id for r in runs]))
    return [(r.start_time, r.end_time) for r in records if r.start_time and r.end_time]


def _step_intervals(
    instance: dg.DagsterInstance, runs: list[dg.DagsterRun]
) -> list[tuple[float, float]]:
    intervals = []
    for run in runs:
        times = {
            entry.dagster_event.event_type: entry.timestamp
            for entry in instance.all_logs(run.run_id)
            if entry.dagster_event is not None
        }
        start = times.get(dg.DagsterEventType.STEP_START)
        end = times.get(dg.DagsterEventType.STEP_SUCCESS)
        if start and end:
            intervals.append((start, end))
    return intervals


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    """How many intervals were open at the same moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak
