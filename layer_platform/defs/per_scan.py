"""Dagster side of the per-scan driver (``layer_platform.batching``): log, metadata, cancel.

A batched asset hands its scans and its per-scan work here: each finished scan is committed
at once and its partition metadata recorded; a run cancelled from the UI (status CANCELING)
stops between scans, keeping what was committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dagster as dg

from layer_platform.batching import BatchOutcome, ScanResult, run_per_scan
from layer_platform.warehouse.store import Warehouse

STOPPING = (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)


def cancel_requested(context: dg.AssetExecutionContext) -> Callable[[], bool]:
    """True once the run was asked to stop (one run-storage read per scan)."""

    def requested() -> bool:
        run = context.instance.get_run_by_id(context.run.run_id)
        return run is not None and run.status in STOPPING

    return requested


def run_scans(
    context: dg.AssetExecutionContext,
    stage: str,
    scan_ids: Sequence[str],
    work: Callable[[str], ScanResult],
    warehouse: Warehouse,
) -> BatchOutcome:
    """``run_per_scan`` with the run's log, cancellation and per-partition metadata."""

    def record(scan_id: str, result: ScanResult) -> None:
        metadata = {
            **result.metadata,
            **{k: dg.MetadataValue.md(v) for k, v in result.markdown.items()},
        }
        context.add_asset_metadata(metadata, partition_key=scan_id)

    outcome = run_per_scan(
        scan_ids,
        work,
        stage=stage,
        warehouse=warehouse,
        log=context.log,
        should_stop=cancel_requested(context),
        on_commit=record,
    )
    if outcome.not_started:
        raise dg.Failure(
            f"{stage}: run cancelled after {len(outcome.done)} committed scans;"
            f" {len(outcome.not_started)} left for the next run"
        )
    return outcome


def check_result(
    name: str, failing: list[str], *, blocking: bool, n_checked: int
) -> dg.AssetCheckResult:
    """A per-scan check over the batch: the scans that failed it (quarantined when it blocks
    the scan, which never blocks the batch: its severity is a warning)."""
    return dg.AssetCheckResult(
        check_name=name,
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failing_scans": dg.MetadataValue.json(failing[:50]),
            "n_failing": len(failing),
            "n_checked": n_checked,
            "quarantines_scan": blocking,
        },
    )
