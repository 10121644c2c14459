"""The landing sensor: new folder, incomplete folder, changed content, cursor persistence, and
a changed folder going all the way to a re-materialized partition (new partitions are left to
the automation sensor, see ``test_automation.py``)."""

from __future__ import annotations

import json
import os
import shutil
import time

import dagster as dg
import numpy as np

from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.sensors import landing_sensor
from layer_platform.io import Volume, read_volume, write_volume
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, simulate_cohort
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.ingestion.test_intake import write_scan

START, END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def tick(
    paths: LayerPaths, cursor: str | None, instance: dg.DagsterInstance | None = None
) -> dg.SensorResult | dg.SkipReason:
    resources = build_definitions(paths=paths).resources
    if instance is None:
        with dg.instance_for_test() as fresh:
            return tick(paths, cursor, fresh)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"storage": resources["storage"]}
    )
    return landing_sensor(context)


def folders(result: dg.SensorResult) -> list[str]:
    return list(json.loads(result.cursor)["folders"])


def test_new_incomplete_and_changed_folders(layer_paths: LayerPaths) -> None:
    assert isinstance(tick(layer_paths, None), dg.SkipReason)

    folder = write_scan(layer_paths.landing, "S1")
    (layer_paths.landing / "S2").mkdir()  # an export in progress: no scan.json yet
    (layer_paths.landing / "S2" / "bmode.nii").write_bytes(b"partial")
    first = tick(layer_paths, None)
    assert isinstance(first, dg.SensorResult)
    assert [r.job_name for r in first.run_requests] == ["ingest"]
    assert folders(first) == ["S1"], "the incomplete folder is not registered"

    assert isinstance(tick(layer_paths, first.cursor), dg.SkipReason)  # cursor persisted

    (folder / "scan.json").write_text(
        json.dumps({"scan_id": "S1", "subject_id": "P", "label": "MP", "site": "B"})
    )
    os.utime(folder / "scan.json", ns=(10**9, 10**9))
    changed = tick(layer_paths, first.cursor)
    assert isinstance(changed, dg.SensorResult)
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key

    shutil.rmtree(folder)
    write_scan(layer_paths.landing, "S2_done", subject_id="P2")
    later = tick(layer_paths, changed.cursor)
    assert isinstance(later, dg.SensorResult)
    assert folders(later) == ["S2_done"]


def test_the_older_flat_cursor_is_still_read(layer_paths: LayerPaths) -> None:
    folder = write_scan(layer_paths.landing, "S1")
    current = json.loads(tick(layer_paths, None).cursor)["folders"]
    assert isinstance(tick(layer_paths, json.dumps(current)), dg.SkipReason)
    (folder / "bmode.nii").write_bytes((folder / "bmode.nii").read_bytes() + b"\0")
    assert isinstance(tick(layer_paths, json.dumps(current)), dg.SensorResult)


def run(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    job = defs.resolve_job_def(request.job_name)
    result = job.execute_in_process(instance=instance, tags=dict(request.tags))
    assert result.success


def test_a_re_exported_folder_is_re_ingested_and_re_preprocessed(layer_paths: LayerPaths) -> None:
    defs = build_definitions(paths=layer_paths)
    warehouse = Warehouse(layer_paths.warehouse)
    processed = "SELECT scan_id, content_hash FROM preprocessing ORDER BY scan_id"
    simulate_cohort(SimulationConfig(n_subjects=1, seed=3), layer_paths.landing)
    first_scan, second_scan = sorted(p.name for p in layer_paths.landing.iterdir() if p.is_dir())
    with dg.instance_for_test() as instance:
        found = tick(layer_paths, None, instance)
        assert [r.job_name for r in found.run_requests] == ["ingest"]
        run(defs, instance, found.run_requests[0])

        # New partitions, never attempted, are the automation's: no request here, but the
        # cursor keeps their content so a failed attempt is not retried by this sensor.
        pending = tick(layer_paths, found.cursor, instance)
        assert isinstance(pending, dg.SensorResult) and pending.run_requests == []
        assert set(json.loads(pending.cursor)["requested"]) == {first_scan, second_scan}
        assert isinstance(tick(layer_paths, pending.cursor, instance), dg.SkipReason)
        # What the automation sensor's run does: both scans in one batched run.
        automated = dg.RunRequest(
            job_name="preprocess_scans", tags={START: first_scan, END: second_scan}
        )
        run(defs, instance, automated)
        before = dict(warehouse.query(processed).itertuples(index=False))
        done = tick(layer_paths, pending.cursor, instance)
        assert isinstance(done, dg.SensorResult) and done.run_requests == []
        assert json.loads(done.cursor)["requested"] == {}, "nothing pending: the cursor shrinks"
        assert isinstance(tick(layer_paths, done.cursor, instance), dg.SkipReason)

        # The exporter writes S1 again with other voxel values.
        bmode = next((layer_paths.landing / first_scan).glob("bmode.*"))
        landed = read_volume(bmode)
        write_volume(bmode, Volume(landed.array * 0.9, landed.spacing))
        reexport = tick(layer_paths, done.cursor, instance)
        assert [r.job_name for r in reexport.run_requests] == ["ingest"]
        run(defs, instance, reexport.run_requests[0])

        redo = tick(layer_paths, reexport.cursor, instance)
        assert [r.job_name for r in redo.run_requests] == ["preprocess_scans"]
        tags = redo.run_requests[0].tags
        assert (tags[START], tags[END]) == (first_scan, first_scan)
        # Requested once: the next tick, before the run finished, asks for nothing more.
        assert isinstance(tick(layer_paths, redo.cursor, instance), dg.SkipReason)
        run(defs, instance, redo.run_requests[0])
        after = dict(warehouse.query(processed).itertuples(index=False))
        assert after[second_scan] == before[second_scan]
        assert after[first_scan] != before[first_scan]
        # Requested once per content: nothing more, and the cursor forgets the scan.
        settled = tick(layer_paths, redo.cursor, instance)
        assert isinstance(settled, dg.SensorResult) and settled.run_requests == []
        assert isinstance(tick(layer_paths, settled.cursor, instance), dg.SkipReason)
        materialized = instance.fetch_materializations(
            dg.AssetKey("preprocessed_volume"), limit=100
        ).records
        keys = sorted(r.partition_key for r in materialized)
        assert keys == sorted([first_scan, first_scan, second_scan]), "only S1 ran again"


def test_tick_time_with_two_thousand_folders(layer_paths: LayerPaths) -> None:
    """Printed, not asserted: a tick lists folders and stats files, reading no volume bytes."""
    payload = np.zeros(1024, dtype=np.uint8).tobytes()
    for index in range(2000):
        folder = layer_paths.landing / f"scan-{index:05d}"
        folder.mkdir()
        (folder / "bmode.nii").write_bytes(payload)
        (folder / "swe.nii").write_bytes(payload)
        (folder / "scan.json").write_text("{}")
    (layer_paths.landing / "incomplete").mkdir()
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        first = tick(layer_paths, None, instance)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        second = tick(layer_paths, first.cursor, instance)
        second_s = time.perf_counter() - started
    assert isinstance(first, dg.SensorResult) and len(folders(first)) == 2000
    assert isinstance(second, dg.SkipReason)
    print(
        f"\nlanding sensor, 2,000 folders x 3 files: first tick {first_s * 1000:.0f} ms,"
        f" unchanged tick {second_s * 1000:.0f} ms, cursor {len(first.cursor) / 1024:.0f} KiB"
    )
