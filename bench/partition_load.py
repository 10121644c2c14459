"""Load: 2,000 scans as dynamic partitions — sensor tick, UI asset page, backfill launch.

``python -m bench.partition_load results.json [--scans 2000] [--repeats 5]``

On a temporary ``LAYER_HOME`` with the project's ``dagster.yaml`` (sqlite instance on disk):

1. lands N scan folders (``scan.json`` + a small ``bmode.nii``, written as an exporter would);
2. times the ``landing_sensor``'s first tick (no cursor: every folder is new) through
   ``build_sensor_context`` against the instance;
3. registers the N partitions of the real ``scans`` partitions definition with the real
   ``ingest`` job (which reads every folder, fills ``scans`` and adds the partitions), then
   times an unchanged tick (cursor from the first: folders listed and stat'ed, N scans
   pending preprocessing looked up in the warehouse and the instance);
4. starts ``dagster-webserver`` on 127.0.0.1 and times the GraphQL queries of the per-scan
   asset's page (``preprocessed_volume``: its partition health bar and its overview), first
   with no partition materialized, then after N materialization events (runless events, as
   if the scans had been preprocessed: the page then has N statuses to show);
5. times submitting a backfill of all N partitions of that asset through the UI's GraphQL
   mutation (submission only: no daemon runs here), then cancels it.

Prints a table and writes the figures as JSON to the path given. Takes ~2-4 min on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ASSET = "preprocessed_volume"

#: The asset page's partition health bar (the UI's ``PartitionHealthQuery``, 1-D part).
PARTITION_HEALTH = """
query PartitionHealth($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses {
          materializedPartitions materializingPartitions failedPartitions
        }
      }
    }
  }
}
"""
#: The asset page's overview: partition counts, latest materialization, definition.
ASSET_OVERVIEW = """
query AssetOverview($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      id
      assetMaterializations(limit: 1) { partition timestamp runId }
      definition {
        id description groupName isPartitioned
        partitionStats { numMaterialized numMaterializing numFailed numPartitions }
        partitionDefinition { description }
      }
    }
  }
}
"""
LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message }
  }
}
"""
CANCEL_BACKFILL = """
mutation Cancel($backfillId: String!) {
  cancelPartitionBackfill(backfillId: $backfillId) {
    __typename
    ... on CancelBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


def land(landing: Path, n: int) -> list[str]:
    """N complete scan folders: a 16x32x8 B-mode (NIfTI) and ``scan.json`` written last."""
    from layer_platform.io import Volume, write_volume

    rng = np.random.default_rng(0)
    ids = []
    for i in range(n):
        scan_id = f"L{i:05d}-{'LR'[i % 2]}"
        folder = landing / scan_id
        folder.mkdir(parents=True)
        bmode = rng.integers(1, 255, size=(16, 32, 8), dtype=np.uint8)
        write_volume(folder / "bmode.nii", Volume(bmode, (1.0, 0.25, 1.5)))
        meta = {
            "scan_id": scan_id,
            "subject_id": f"P{i // 2:05d}",
            "label": "MP" if (i // 2) % 2 else "control",
            "side": "left" if i % 2 == 0 else "right",
        }
        (folder / "scan.json.tmp").write_text(json.dumps(meta))
        os.replace(folder / "scan.json.tmp", folder / "scan.json")
        ids.append(scan_id)
    return ids


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


def start_webserver(home: Path, dagster_home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "LAYER_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    command = [
        str(Path(sys.executable).parent / "dagster-webserver"),
        *("-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")),
    ]
    with log.open("w") as out:
        server = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended as a whole
        )
    return server, f"http://127.0.0.1:{port}"


def wait_for_asset(url: str, server: subprocess.Popen, log: Path, timeout: float = 300) -> float:
    """Seconds until the code location is loaded and the asset resolves."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited:\n{log.read_text()[-3000:]}")
        try:
            data = graphql(url, PARTITION_HEALTH, {"assetKey": {"path": ["cohort_manifest"]}})
            if data["assetNodeOrError"]["__typename"] == "AssetNode":
                return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, RuntimeError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"dagster-webserver not ready:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "first_s": round(samples[0], 4),
        "median_s": round(statistics.median(samples), 4),
        "max_s": round(max(samples), 4),
        "n": len(samples),
    }


def asset_page(url: str, n_scans: int, repeats: int, materialized: int = 0) -> dict[str, Any]:
    """Seconds of the per-scan asset page's two GraphQL queries, each repeated."""
    variables = {"assetKey": {"path": [ASSET]}}
    health, overview = [], []
    for _ in range(repeats):
        seconds, data = timed(lambda: graphql(url, PARTITION_HEALTH, variables))
        node = data["assetNodeOrError"]
        assert len(node["partitionKeysByDimension"][0]["partitionKeys"]) == n_scans
        assert len(node["assetPartitionStatuses"]["materializedPartitions"]) == materialized
        health.append(seconds)
        seconds, data = timed(lambda: graphql(url, ASSET_OVERVIEW, variables))
        stats = data["assetOrError"]["definition"]["partitionStats"]
        assert (stats["numPartitions"], stats["numMaterialized"]) == (n_scans, materialized)
        overview.append(seconds)
    return {
        "partition_health_query": summary(health),
        "asset_overview_query": summary(overview),
        "both": summary([a + b for a, b in zip(health, overview, strict=True)]),
    }


def measure(root: Path, n_scans: int, repeats: int) -> dict[str, Any]:
    import dagster as dg

    from layer_platform.defs.definitions import build_definitions
    from layer_platform.defs.partitions import SCANS, scan_partitions
    from layer_platform.defs.resources import StorageResource
    from layer_platform.defs.sensors import landing_sensor
    from layer_platform.orchestration.runner import open_instance, run_job
    from layer_platform.settings import LayerPaths

    paths = LayerPaths.under(root / "home").ensure()
    figures: dict[str, Any] = {"scans": n_scans}
    figures["landing_s"], ids = timed(lambda: land(paths.landing, n_scans))
    instance = open_instance(paths)
    storage = StorageResource.from_paths(paths)

    def tick(cursor: str | None) -> Any:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"storage": storage}
        )
        return landing_sensor(context)

    first_s, first = timed(lambda: tick(None))
    requests = first.run_requests or []
    assert len(requests) == 1 and requests[0].tags["layer/new_or_changed"] == str(n_scans)
    figures["sensor_first_tick"] = {"seconds": round(first_s, 4), "run_requests": len(requests)}
    figures["sensor_cursor_kib"] = round(len(first.cursor.encode()) / 1024, 1)

    defs = build_definitions(paths=paths)
    figures["ingest_job_s"], report = timed(lambda: run_job(defs, instance, "ingest"))
    assert not report.failed, "the ingest run failed"
    registered = instance.get_dynamic_partitions(SCANS)
    assert sorted(registered) == sorted(ids), "every landed scan is a partition"
    assert scan_partitions.name == SCANS

    unchanged = []
    for _ in range(repeats):
        seconds, result = timed(lambda: tick(first.cursor))
        assert isinstance(result, dg.SkipReason) or not result.run_requests, result
        unchanged.append(seconds)
    figures["sensor_unchanged_tick"] = summary(unchanged)

    log = root / "webserver.log"
    server, url = start_webserver(paths.home, paths.dagster_home, log)
    try:
        figures["webserver_ready_s"] = round(wait_for_asset(url, server, log), 1)
        figures["ui_none_materialized"] = asset_page(url, n_scans, repeats)

        def materialize_all() -> None:
            for key in registered:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(asset_key=ASSET, partition=key)
                )

        figures["report_n_materializations_s"] = round(timed(materialize_all)[0], 1)
        figures["ui_all_materialized"] = asset_page(url, n_scans, repeats, materialized=n_scans)

        params = {
            "partitionNames": registered,
            "assetSelection": [{"path": [ASSET]}],
            "title": "partition_load bench (cancelled at once)",
        }
        seconds, data = timed(lambda: graphql(url, LAUNCH_BACKFILL, {"params": params}))
        launched = data["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        backfill = instance.get_backfill(backfill_id)
        n_targeted = backfill.asset_backfill_data.get_num_partitions()
        assert n_targeted == n_scans, n_targeted
        figures["backfill_launch"] = {"seconds": round(seconds, 4), "partitions": n_targeted}
        seconds, data = timed(lambda: graphql(url, CANCEL_BACKFILL, {"backfillId": backfill_id}))
        cancelled = data["cancelPartitionBackfill"]
        assert cancelled["__typename"] == "CancelBackfillSuccess", cancelled
        figures["backfill_cancel_s"] = round(seconds, 4)
        figures["backfill_status_after_cancel"] = str(instance.get_backfill(backfill_id).status)
    finally:
        stop(server)
    return figures


def table(figures: dict[str, Any]) -> str:
    rows = [
        ("land N scan folders", f"{figures['landing_s']:.1f} s"),
        (
            "landing sensor, first tick (all new)",
            f"{figures['sensor_first_tick']['seconds']:.3f} s",
        ),
        ("  its cursor", f"{figures['sensor_cursor_kib']} KiB"),
        ("ingest job: read N folders, add N partitions", f"{figures['ingest_job_s']:.1f} s"),
        ("landing sensor, unchanged tick", _median(figures["sensor_unchanged_tick"])),
        ("webserver start until the asset resolves", f"{figures['webserver_ready_s']:.1f} s"),
    ]
    for state in ("none", "all"):
        page = figures[f"ui_{state}_materialized"]
        rows += [
            (
                f"UI asset page, {state} materialized: health",
                _median(page["partition_health_query"]),
            ),
            ("  overview", _median(page["asset_overview_query"])),
            (
                "  both (first / median)",
                f"{page['both']['first_s']:.3f} / {page['both']['median_s']:.3f} s",
            ),
        ]
    rows += [
        ("backfill of all N partitions: submit", f"{figures['backfill_launch']['seconds']:.3f} s"),
        ("  then cancel", f"{figures['backfill_cancel_s']:.3f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"N = {figures['scans']} scan partitions"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def _median(found: dict[str, float]) -> str:
    return f"{found['median_s']:.3f} s (median)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="where to write the figures (JSON)")
    parser.add_argument("--scans", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="partition_load_") as tmp:
        figures = measure(Path(tmp), args.scans, args.repeats)
    figures["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    print(table(figures))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"figures written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
