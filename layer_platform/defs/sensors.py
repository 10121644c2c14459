"""Sensors: where new and re-exported scans are detected and sent on their way.

The landing sensor works in two steps, one tick apart:

1. a folder that completed (``scan.json`` appeared) or changed (an exporter rewrote a file)
   gets an ``ingest`` run, which reads it, quarantines it or records its content hash and
   registers its partition;
2. a scan whose recorded content hash has no preprocessing yet (new, or re-exported with
   other bytes) gets a ``preprocess_scans`` run for a batch of such scans, once per content.

Per tick it costs one listing of the landing zone, one listing and a ``stat`` per file of each
folder (names, sizes, mtimes: no byte of any volume is read), and one short warehouse query.
"""

import hashlib
import json

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from layer_platform.defs.jobs import ingest_job, preprocess_job
from layer_platform.defs.partitions import SCANS
from layer_platform.defs.resources import StorageResource
from layer_platform.defs.runner import contiguous_ranges
from layer_platform.ingestion.landing import discover

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
    from layer_platform.defs.pipeline import PENDING_PREPROCESSING

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
    todo = {s: h for s, h in now_pending.items() if requested.get(s) != h}
    requests = []
    for start, end in contiguous_ranges(registered, set(todo), MAX_BATCH):
        batch = registered[position[start] : position[end] + 1]
        requests.append(
            dg.RunRequest(
                run_key=_key("preprocess", *(f"{s}:{todo[s]}" for s in batch if s in todo)),
                job_name=preprocess_job.name,
                tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
            )
        )
    # Remember what is still pending (so the cursor stays small): a scan whose run failed is
    # not requested again until its content changes; `layer-platform run` retries it.
    requested.clear()
    requested.update(now_pending)
    return requests


@dg.sensor(
    jobs=[ingest_job, preprocess_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests an intake run when a landing folder completes (scan.json appears) or "
    "an exporter rewrites one, then a batched preprocessing run for each new or changed scan; "
    "the cursor holds each folder's fingerprint and each scan's requested content hash.",
)
def landing_sensor(
    context: dg.SensorEvaluationContext, storage: StorageResource
) -> dg.SensorResult | dg.SkipReason:
    """Cheap per tick: directory listings and stat metadata, never the volumes' bytes."""
    seen, requested = _load_cursor(context.cursor)
    current = {f.name: f.fingerprint for f in discover(storage.paths.landing)}
    changed = sorted(name for name, fingerprint in current.items() if seen.get(name) != fingerprint)
    requests = []
    if changed:
        requests.append(
            dg.RunRequest(
                run_key=_key("ingest", *(f"{name}:{current[name]}" for name in changed)),
                job_name=ingest_job.name,
                tags={"layer/new_or_changed": str(len(changed))},
            )
        )
    requests += _preprocess_requests(context, storage, requested)
    if not requests:
        return dg.SkipReason(f"no new or changed scan folders among {len(current)}")
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"folders": current, "requested": requested}, sort_keys=True),
    )
