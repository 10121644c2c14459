"""Sensors: where new and re-exported scans are detected and sent on their way.

The landing sensor works in two steps, one tick apart:

1. a folder that completed (``scan.json`` appeared) or changed (an exporter rewrote a file)
   gets an ``ingest`` run, which reads it, quarantines it or records its content hash and
   registers its partition;
2. a scan whose recorded content hash has no preprocessing yet *and* whose partition was
   already attempted (a re-export of a preprocessed scan, or a fix of one whose preprocessing
   failed) gets a ``preprocess_scans`` run for a batch of such scans, once per content.

A new partition, never attempted, is left to declarative automation (``defs/automation.py``),
which takes it through preprocessing, segmentation and saliency in one batched run; the
automation also follows every re-preprocessed scan downstream.

Per tick it costs one listing of the landing zone, one listing and a ``stat`` per file of each
folder (names, sizes, mtimes: no byte of any volume is read), and one short warehouse query.
"""

import hashlib
import json

import dagster as dg

from layer_platform.defs.assets.preprocessing import preprocessed_volume
from layer_platform.defs.jobs import IN_PROCESS, ingest_job, preprocess_job
from layer_platform.defs.partitions import SCANS, scan_partitions
from layer_platform.defs.resources import StorageResource
from layer_platform.ingestion.landing import discover
from layer_platform.orchestration.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from layer_platform.orchestration.runner import contiguous_ranges
from layer_platform.warehouse.pending import PENDING_PREPROCESSING

IN_PROGRESS = dg.AssetPartitionStatus.IN_PROGRESS
#: Seconds between ticks (a tick stats files only: ~140 ms for 2,000 folders).
LANDING_INTERVAL_S = 15
#: Largest batch of scans one ``preprocess_scans`` run takes.
MAX_BATCH = 500


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _load_cursor(cursor: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(folder → fingerprint, scan → content hash requested); reads the older flat form too."""
    data = json.loads(cursor) if cursor else {}
    if "folders" not in data:
        return data, {}
    return data["folders"], data.get("requested", {})


def _preprocess_requests(
    context: dg.SensorEvaluationContext, storage: StorageResource, requested: dict[str, str]
) -> list[dg.RunRequest]:
    """Batched runs for scans whose landed content has no preprocessing yet, once per content."""
    # Imported here: the pipeline module imports the Definitions, which import this module.

    warehouse = storage.warehouse()
    if not (warehouse.table_exists("scans") and warehouse.table_exists("preprocessing")):
        return []
    pending = warehouse.query(
        "SELECT p.scan_id, s.content_hash FROM (" + PENDING_PREPROCESSING + ") p"
        " JOIN scans s USING (scan_id)"
    )
    registered = context.instance.get_dynamic_partitions(SCANS)
    position = {scan: index for index, scan in enumerate(registered)}
    now_pending = {
        row.scan_id: row.content_hash
        for row in pending.itertuples(index=False)
        if row.scan_id in position
    }
    status = dict.fromkeys(now_pending)
    if now_pending:
        status.update(
            context.instance.get_status_by_partition(
                preprocessed_volume.key, list(now_pending), scan_partitions
            )
            or {}
        )
    # In progress: decided on a later tick (the run may have read the older bytes); what the
    # cursor held for it is kept, so a run of ours that fails is not requested again.
    running = {s for s, found in status.items() if found == IN_PROGRESS}
    # Never attempted: automation's (a request here would preprocess it twice).
    todo = {
        s: h
        for s, h in now_pending.items()
        if s not in running and requested.get(s) != h and status[s] is not None
    }
    requests = []
    for start, end in contiguous_ranges(registered, set(todo), MAX_BATCH):
        batch = registered[position[start] : position[end] + 1]
        requests.append(
            dg.RunRequest(
                run_key=_key("preprocess", *(f"{s}:{todo[s]}" for s in batch if s in todo)),
                job_name=preprocess_job.name,
                run_config=IN_PROCESS,
                tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
            )
        )
    # Remember what is still pending (so the cursor stays small): a scan whose run failed is
    # not requested again until its content changes; `layer-platform run` retries it.
    kept = {s: requested[s] for s in running if s in requested}
    requested.clear()
    requested.update({s: h for s, h in now_pending.items() if s not in running})
    requested.update(kept)
    return requests


@dg.sensor(
    jobs=[ingest_job, preprocess_job],
    minimum_interval_seconds=LANDING_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests an intake run when a landing folder completes (scan.json appears) or "
    "an exporter rewrites one, then a batched preprocessing run for re-exported scans (new "
    "scans are left to the automation sensor); the cursor holds each folder's fingerprint and "
    "each scan's requested content hash.",
)
def landing_sensor(
    context: dg.SensorEvaluationContext, storage: StorageResource
) -> dg.SensorResult | dg.SkipReason:
    """Cheap per tick: directory listings and stat metadata, never the volumes' bytes."""
    seen, requested = _load_cursor(context.cursor)
    before = dict(requested)
    current = {f.name: f.fingerprint for f in discover(storage.paths.landing)}
    changed = sorted(name for name, fingerprint in current.items() if seen.get(name) != fingerprint)
    requests = []
    if changed:
        requests.append(
            dg.RunRequest(
                run_key=_key("ingest", *(f"{name}:{current[name]}" for name in changed)),
                job_name=ingest_job.name,
                run_config=IN_PROCESS,
                tags={"layer/new_or_changed": str(len(changed))},
            )
        )
    requests += _preprocess_requests(context, storage, requested)
    cursor = json.dumps({"folders": current, "requested": requested}, sort_keys=True)
    if not requests:
        reason = f"no new or changed scan folders among {len(current)}"
        if (current, requested) == (seen, before):
            return dg.SkipReason(reason)
        # Keep what was left to the automation, so a failed attempt is not retried here.
        return dg.SensorResult(skip_reason=reason, cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
