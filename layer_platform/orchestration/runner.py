"""Drive the assets through a real Dagster instance on disk (what ``layer-platform run`` does).

Each stage runs as few runs as possible: per-scan stages take contiguous ranges of the scan
partitions (single-run backfill policy), because one run per scan costs seconds of overhead;
``workers`` splits them into that many ranges, run at once by the instance's run launcher.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from layer_platform.defs.jobs import IN_PROCESS
from layer_platform.errors import ConfigurationError
from layer_platform.io.writers import owner_alive, process_owner
from layer_platform.orchestration.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from layer_platform.orchestration.launcher import InstanceLauncher
from layer_platform.settings import LayerPaths

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"
#: ``<pid>@<host>`` of the process that started a run and waits for it (``fail_orphaned_runs``).
RUNNER_TAG = "layer/runner"
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def prepare_dagster_home(paths: LayerPaths, source: Path | None = None) -> Path:
    """Copy the project's ``dagster.yaml`` into the instance folder under ``LAYER_HOME``."""
    source = source or Path(os.environ.get("LAYER_DAGSTER_YAML", REPO_DAGSTER_YAML))
    if not source.is_file():
        raise ConfigurationError(
            f"dagster.yaml not found at {source}: install the project from its repository"
            " (`make install`) or set LAYER_DAGSTER_YAML to the file"
        )
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    target = paths.dagster_home / "dagster.yaml"
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
    return paths.dagster_home


def open_instance(paths: LayerPaths) -> dg.DagsterInstance:
    """The persistent instance the UI (``dagster dev``) shows."""
    return dg.DagsterInstance.from_config(str(prepare_dagster_home(paths)))


def contiguous_ranges(
    ordered: Sequence[str], wanted: set[str], max_size: int
) -> list[tuple[str, str]]:
    """Split ``wanted`` keys into runs of consecutive keys in partition order."""
    ranges: list[tuple[str, str]] = []
    start: str | None = None
    last: str | None = None
    size = 0
    for key in ordered:
        if key in wanted and (start is None or size < max_size):
            start = start or key
            last, size = key, size + 1
            continue
        if start is not None:
            ranges.append((start, last))  # type: ignore[arg-type]
            start, last, size = None, None, 0
        if key in wanted:
            start, last, size = key, key, 1
    if start is not None:
        ranges.append((start, last))  # type: ignore[arg-type]
    return ranges


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs ``run_job`` started from a process of this host that is gone, and
    free their concurrency slots; returns their run ids.

    A process killed mid-run (``kill -9``, OOM) leaves its run STARTED forever, still holding
    its slot of the ``warehouse`` pool: every later writing step would wait for it forever.
    A launched run's worker is a child of that process's code server and dies with its process
    group; a run left going elsewhere (a pod) is failed too: nobody is waiting for its result,
    and the next ``layer-platform run`` redoes its scans. Runs launched by the daemon or the
    UI carry no ``RUNNER_TAG`` and are left alone.
    """
    orphans = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        owner = run.tags.get(RUNNER_TAG)
        if owner is None or owner_alive(owner):
            continue
        instance.report_run_failed(
            run, message=f"the process running it ({owner}) is gone: killed or crashed mid-run"
        )
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        orphans.append(run.run_id)
    return orphans


@dataclass
class StageReport:
    job: str
    runs: list[str] = field(default_factory=list)
    partitions: int = 0
    failed: list[str] = field(default_factory=list)


def run_job(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job_name: str,
    *,
    partition_keys: Sequence[str] | None = None,
    max_batch: int = 500,
    workers: int = 1,
    launcher: InstanceLauncher | None = None,
) -> StageReport:
    """Run a job once (unpartitioned) or once per contiguous range of ``partition_keys``.

    With a ``launcher`` the runs go through the instance, ``workers`` at once, the keys split
    into at least ``workers`` ranges. Without one they execute one after the other in this
    process on ``defs`` (a ``Definitions`` object cannot travel to another process: tests and
    benchmarks with tiny settings, ``layer-platform run --in-process``).
    """
    if workers < 1 or (workers > 1 and launcher is None):
        raise ValueError(f"workers={workers}: need at least 1, and a launcher for more than 1")
    job = defs.resolve_job_def(job_name)
    report = StageReport(job_name)
    if partition_keys is None:
        batches: list[dict[str, str]] = [{}]
    else:
        if job.partitions_def is None:
            raise ValueError(f"job {job_name!r} is not partitioned")
        ordered = job.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
        size = min(max_batch, -(-len(partition_keys) // workers))
        batches = [
            {ASSET_PARTITION_RANGE_START_TAG: a, ASSET_PARTITION_RANGE_END_TAG: b}
            for a, b in contiguous_ranges(ordered, set(partition_keys), max(size, 1))
        ]
        report.partitions = len(partition_keys)
    fail_orphaned_runs(instance)
    batches = [{**tags, RUNNER_TAG: process_owner()} for tags in batches]
    if launcher is not None:
        # one process per run, as the sensor's runs: its steps take turns in the warehouse pool
        report.runs, report.failed = launcher.run_all(job_name, batches, workers, IN_PROCESS)
        return report
    for tags in batches:
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
        report.runs.append(result.run_id)
        if not result.success:
            report.failed.append(result.run_id)
    return report
