"""The landing sensor: new folder, incomplete folder, changed content, cursor persistence."""

from __future__ import annotations

import json
import os
import shutil

import dagster as dg

from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.sensors import landing_sensor
from layer_platform.settings import LayerPaths
from layer_platform_tests.ingestion.test_intake import write_scan


def tick(paths: LayerPaths, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    resources = build_definitions(paths=paths).resources
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"storage": resources["storage"]}
        )
        return landing_sensor(context)


def test_new_incomplete_and_changed_folders(layer_paths: LayerPaths) -> None:
    assert isinstance(tick(layer_paths, None), dg.SkipReason)

    folder = write_scan(layer_paths.landing, "S1")
    (layer_paths.landing / "S2").mkdir()  # an export in progress: no scan.json yet
    first = tick(layer_paths, None)
    assert isinstance(first, dg.SensorResult)
    assert len(first.run_requests) == 1
    assert list(json.loads(first.cursor)) == ["S1"]

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
    assert list(json.loads(later.cursor)) == ["S2_done"]
