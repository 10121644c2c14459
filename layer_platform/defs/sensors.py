"""Sensors: where new scans are detected."""

import hashlib
import json

import dagster as dg

from layer_platform.defs.jobs import ingest_job
from layer_platform.defs.resources import StorageResource
from layer_platform.ingestion.landing import discover


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests an intake run when a landing folder completes (scan.json appears) or "
    "an exporter rewrites one; the cursor holds each folder's fingerprint.",
)
def landing_sensor(
    context: dg.SensorEvaluationContext, storage: StorageResource
) -> dg.SensorResult | dg.SkipReason:
    """Cheap per tick: one directory listing and a stat per file, no image bytes read."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = {f.name: f.fingerprint for f in discover(storage.paths.landing)}
    changed = sorted(name for name, fingerprint in current.items() if seen.get(name) != fingerprint)
    if not changed:
        return dg.SkipReason(f"no new or changed scan folders among {len(current)}")
    run_key = hashlib.sha256(
        "".join(f"{name}:{current[name]}" for name in changed).encode()
    ).hexdigest()[:24]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=run_key, tags={"layer/new_or_changed": str(len(changed))})
        ],
        cursor=json.dumps(current, sort_keys=True),
    )
