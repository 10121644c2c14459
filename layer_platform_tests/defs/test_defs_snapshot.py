"""A snapshot of the asset graph, so every change to it shows up in review (as in
dagster-open-platform's ``test_defs.py``): asset keys, groups, kinds, partitions, dependencies,
code versions, pools, checks, automation conditions, jobs, schedules and sensors.

After an intended change, regenerate the committed file and review its diff::

    LAYER_UPDATE_SNAPSHOT=1 pytest layer_platform_tests/defs/test_defs_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from layer_platform.defs.definitions import build_definitions
from layer_platform.settings import LayerPaths

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"dynamic:{partitions_def.name}"
    if isinstance(partitions_def, dg.StaticPartitionsDefinition):
        return "static:" + ",".join(partitions_def.get_partition_keys())
    return type(partitions_def).__name__


def graph_snapshot(defs: dg.Definitions) -> dict:
    """Everything about ``defs`` a reviewer should see change; no paths, no object ids."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "partitions": _partitions(node.partitions_def),
            "backfill_policy": str(node.backfill_policy) if node.backfill_policy else None,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "code_version": node.code_version,
            "pools": sorted(node.pools or ()),
            "owners": sorted(node.owners),
            "tags": dict(sorted(node.tags.items())),
            "automation_condition": repr(condition) if condition else None,
            "checks": {
                check.name: {"blocking": graph.get(check).blocking}
                for check in sorted(node.check_keys, key=lambda c: c.name)
            },
        }
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys),
            "executor": job.executor_def.name,
            "partitions": _partitions(job.partitions_def),
        }
    schedules = {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "job": schedule.job_name,
            "timezone": schedule.execution_timezone,
            "default_status": schedule.default_status.value,
        }
        for schedule in defs.schedules or []
    }
    sensors = {
        sensor.name: {
            "type": sensor.sensor_type.value,
            "jobs": sorted(target.job_name for target in sensor.targets),
            "default_status": sensor.default_status.value,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
        }
        for sensor in defs.sensors or []
    }
    return {
        "assets": assets,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted((defs.resources or {}).keys()),
        "executor": defs.executor.name
        if isinstance(defs.executor, dg.ExecutorDefinition)
        else None,
    }


def test_asset_graph_matches_the_committed_snapshot(tmp_path: Path):
    # An empty environment: the snapshot must not depend on who runs it.
    defs = build_definitions({}, paths=LayerPaths.from_env({"LAYER_HOME": str(tmp_path)}))
    found = graph_snapshot(defs)
    text = json.dumps(found, indent=2, sort_keys=True) + "\n"
    if os.environ.get("LAYER_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.is_file(), f"no snapshot yet: run with LAYER_UPDATE_SNAPSHOT=1 ({__doc__})"
    expected = json.loads(SNAPSHOT.read_text())
    assert found == expected, "the asset graph changed: regenerate the snapshot and review it"
