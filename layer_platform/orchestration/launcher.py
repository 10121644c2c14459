"""Start runs through the Dagster instance: the run coordinator and run launcher of
``dagster.yaml``, on definitions a code server loads by module name.

The launcher, not this process, decides where a run executes: the ``DefaultRunLauncher`` starts
a local process per run, dagster-k8s's ``K8sRunLauncher`` a pod (docs/scale-out.md). Runs are
queued only when the instance's queue can drain: a ``QueuedRunCoordinator`` (Dagster's default)
whose daemon is not running would leave them ``QUEUED`` forever, so they are launched directly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import dagster as dg

from layer_platform.orchestration.dagster_internals import (
    QUEUED_RUN_DAEMON,
    JobSubsetSelector,
    ModuleTarget,
    WorkspaceProcessContext,
)
from layer_platform.settings import LayerPaths

FINISHED = frozenset(
    {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
)
#: Seconds between two looks at the runs being waited for.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class CodeLocation:
    """Definitions a code server can import by name (``module.attribute``), as ``dagster dev``
    loads them from ``workspace.yaml``; the module builds them from the environment."""

    module: str = "layer_platform.definitions"
    attribute: str = "defs"


@contextmanager
def _environment(overrides: Mapping[str, str | None]) -> Iterator[None]:
    """Set ``overrides`` in this process's environment for the block (None: unset): the code
    server (and every run worker it starts) inherits it, so they work on the caller's paths."""
    saved = {key: os.environ.get(key) for key in overrides}
    for key, value in overrides.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def queue_drains(instance: dg.DagsterInstance) -> bool:
    """True when a submitted run will start: the coordinator launches at once, or it queues
    and the daemon that dequeues is alive (``layer-platform dev`` runs it)."""
    if not isinstance(instance.run_coordinator, dg.QueuedRunCoordinator):
        return True
    status = instance.get_daemon_statuses([QUEUED_RUN_DAEMON])[QUEUED_RUN_DAEMON]
    return bool(status.healthy)


class _Plan(NamedTuple):
    """A job as the code server describes it (Dagster's private ``Remote*`` types)."""

    repository: Any
    remote_job: Any
    plan: Any


class InstanceLauncher:
    """Creates runs of one code location's jobs on the instance and starts them there."""

    def __init__(self, instance: dg.DagsterInstance, context: WorkspaceProcessContext, name: str):
        self.instance = instance
        self._context = context
        self._name = name
        self._plans: dict[tuple[str, str], _Plan] = {}

    @classmethod
    @contextmanager
    def open(
        cls, instance: dg.DagsterInstance, paths: LayerPaths, location: CodeLocation
    ) -> Iterator[InstanceLauncher]:
        """Start a code server for ``location`` bound to ``paths`` (for as long as the block
        lasts: a run worker asks it for its job)."""
        target = ModuleTarget(location.module, location.attribute, os.getcwd(), location.module)
        # MLflow's set_tracking_uri exports MLFLOW_TRACKING_URI: a store this process used
        # before must not become the children's "server" unless ``paths`` names one
        env: dict[str, str | None] = {"MLFLOW_TRACKING_URI": None}
        env |= {**paths.to_env(), "DAGSTER_HOME": str(paths.dagster_home)}
        with (
            _environment(env),
            WorkspaceProcessContext(instance, target, version=dg.__version__) as context,
        ):
            error = context.create_request_context().get_code_location_error(location.module)
            if error is not None:
                raise RuntimeError(f"code location {location.module} failed to load: {error}")
            yield cls(instance, context, location.module)

    def _plan(self, job_name: str, run_config: Mapping[str, object]) -> _Plan:
        """The job and its execution plan, asked of the code server once per job: every range
        run of a stage shares them (the range travels in the run's tags)."""
        key = (job_name, repr(sorted(run_config.items())))
        if key not in self._plans:
            location = self._context.create_request_context().get_code_location(self._name)
            (repository,) = location.get_repositories().values()
            remote_job = location.get_job(
                JobSubsetSelector(
                    location_name=self._name,
                    repository_name=repository.name,
                    job_name=job_name,
                    op_selection=None,
                )
            )
            plan = location.get_execution_plan(
                remote_job,
                run_config,
                step_keys_to_execute=None,
                known_state=None,
                instance=self.instance,
            ).execution_plan_snapshot
            self._plans[key] = _Plan(repository, remote_job, plan)
        return self._plans[key]

    def start(
        self, job_name: str, tags: Mapping[str, str], run_config: Mapping[str, object]
    ) -> str:
        """Create a run of ``job_name`` and hand it to the instance; its id."""
        repository, remote_job, plan = self._plan(job_name, run_config)
        run = self.instance.create_run(
            job_name=job_name,
            run_id=None,
            run_config=run_config,
            resolved_op_selection=None,
            step_keys_to_execute=plan.step_keys_to_execute,
            op_selection=None,
            status=None,
            root_run_id=None,
            parent_run_id=None,
            tags={**remote_job.tags, **tags},
            job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=None,
            asset_check_selection=None,
            asset_graph=repository.asset_graph,
        )
        workspace = self._context.create_request_context()
        if queue_drains(self.instance):
            self.instance.submit_run(run.run_id, workspace)
        else:
            self.instance.launch_run(run.run_id, workspace)
        return run.run_id

    def finished(self, run_ids: list[str]) -> dict[str, bool]:
        """Run id → succeeded, for those of ``run_ids`` that have finished."""
        done = {}
        for run_id in run_ids:
            run = self.instance.get_run_by_id(run_id)
            if run is not None and run.status in FINISHED:
                done[run_id] = run.status == dg.DagsterRunStatus.SUCCESS
        return done

    def run_all(
        self,
        job_name: str,
        batches: list[dict[str, str]],
        workers: int,
        run_config: Mapping[str, object],
    ) -> tuple[list[str], list[str]]:
        """Start one run per tag set in ``batches``, at most ``workers`` at once, and wait for
        all; returns the ids of the runs started and of those that did not succeed."""
        pending = list(batches)
        running: list[str] = []
        started: list[str] = []
        failed: set[str] = set()
        while pending or running:
            while pending and len(running) < workers:
                run_id = self.start(job_name, pending.pop(0), run_config)
                running.append(run_id)
                started.append(run_id)
            for run_id, succeeded in self.finished(running).items():
                running.remove(run_id)
                if not succeeded:
                    failed.add(run_id)
            if running:
                time.sleep(POLL_SECONDS)
        return started, [run_id for run_id in started if run_id in failed]
