"""The automation conditions of the real asset graph, evaluated tick by tick on a temporary
instance (``dg.evaluate_automation_conditions``); runs are stood in for by reported
materializations, with the champion data versions the model assets record."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
import pytest

from layer_platform.defs.assets.summary_tables import SUMMARY_ASSETS
from layer_platform.defs.automation import AUTOMATED_ASSETS, automation_sensor
from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.partitions import SCANS
from layer_platform.settings import LayerPaths
from layer_platform_tests.dagster_internals import DATA_VERSION_TAG

PER_SCAN = ("preprocessed_volume", "layer_segmentation", "layer_saliency")
#: The ``saliency_summary`` step, whose table assets are always requested together.
SUMMARY = "saliency_summary"
MODES = ("bmode", "swe", "bmode_swe")


def report(
    instance: dg.DagsterInstance,
    asset: str,
    partitions: Iterable[str | None] = (None,),
    version: str | None = None,
) -> None:
    """A materialization as a run would record it (``version``: a user-provided data version)."""
    tags = {DATA_VERSION_TAG: version} if version else None
    for partition in partitions:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset, partition=partition, tags=tags)
        )


def report_summary(instance: dg.DagsterInstance) -> None:
    """The ``saliency_summary`` step's run: every table asset it writes."""
    for table in SUMMARY_ASSETS:
        report(instance, table)


class Ticks:
    """Successive evaluations sharing the automation cursor, as the daemon's ticks do."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance, self.cursor = defs, instance, None

    def __call__(self) -> dict[str, list[str | None]]:
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor
        )
        self.cursor = result.cursor
        requested = {
            key.to_user_string(): sorted(result.get_requested_partitions(key), key=str)
            for key in (dg.AssetKey(name) for name in (*PER_SCAN, *SUMMARY_ASSETS))
            if result.get_num_requested(key)
        }
        tables = {name: requested.pop(name) for name in SUMMARY_ASSETS if name in requested}
        if tables:
            assert tables == {key: [None] for key in SUMMARY_ASSETS}, "one step: every table"
            requested[SUMMARY] = [None]
        return requested


@pytest.fixture
def cohort(layer_paths: LayerPaths):
    """Scans A and B fully materialized, with champion models, on a temporary instance."""
    defs = build_definitions(paths=layer_paths)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SCANS, ["A", "B"])
        report(instance, "cohort_manifest")
        report(instance, "segmentation_model", version="layer-segmenter v1")
        report(instance, "pain_classifier", MODES, version="classifiers v1")
        for asset in PER_SCAN:
            report(instance, asset, ["A", "B"])
        report_summary(instance)
        yield instance, Ticks(defs, instance)


def test_a_new_scan_flows_down_alone_then_the_summary_refreshes(cohort) -> None:
    instance, tick = cohort
    assert tick() == {}, "a materialized cohort requests nothing"

    instance.add_dynamic_partitions(SCANS, ["C", "D"])  # what intake does for two new scans
    report(instance, "cohort_manifest")
    requested = tick()
    # Both new scans through all three per-scan assets in one tick (so one batched run); no
    # materialized scan again, and no summary before the new saliency rows exist.
    assert requested == {asset: ["C", "D"] for asset in PER_SCAN}

    for asset in PER_SCAN:  # the run finishes
        report(instance, asset, ["C", "D"])
    assert tick() == {SUMMARY: [None]}, "the summary follows the wave, once"
    report_summary(instance)
    assert tick() == {}, "materialized partitions are not requested again"
    report(instance, "cohort_manifest")  # a later intake that accepted nothing new
    assert tick() == {}


def test_a_re_preprocessed_scan_flows_down_alone(cohort) -> None:
    instance, tick = cohort
    tick()
    report(instance, "preprocessed_volume", ["B"])  # the landing sensor's run for a re-export
    assert tick() == {"layer_segmentation": ["B"], "layer_saliency": ["B"]}


def test_only_a_new_champion_recomputes_every_scan(cohort) -> None:
    instance, tick = cohort
    tick()
    report(instance, "pain_classifier", ["bmode"], version="classifiers v1")
    assert tick() == {}, "a retrain whose challenger lost (same champion) requests nothing"

    report(instance, "pain_classifier", ["bmode"], version="classifiers v2")
    assert tick() == {"layer_saliency": ["A", "B"]}, "every scan, with the new champion"
    report(instance, "layer_saliency", ["A", "B"])
    assert tick() == {SUMMARY: [None]}
    report_summary(instance)

    report(instance, "segmentation_model", version="layer-segmenter v2")
    # New segmenter: every scan is re-segmented, and its saliency rides in the same run.
    assert tick() == {"layer_segmentation": ["A", "B"], "layer_saliency": ["A", "B"]}


def test_the_automation_sensor_is_on_by_default(layer_paths: LayerPaths) -> None:
    defs = build_definitions(paths=layer_paths)
    sensor = defs.resolve_sensor_def(automation_sensor.name)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    automated = AUTOMATED_ASSETS.resolve(graph)
    assert {key.to_user_string() for key in automated} == {*PER_SCAN, *SUMMARY_ASSETS}
    for key in automated:
        assert graph.get(key).automation_condition is not None, key
        assert graph.get(key).code_version, key
