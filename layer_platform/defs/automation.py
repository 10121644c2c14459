"""Declarative automation: a registered scan flows down on its own, then the cohort summary.

Who does what once ``dagster dev`` (the daemon) runs:

- the ``landing_sensor`` gets an ``ingest`` run for a folder that completes or changes; intake
  registers the scan's partition (and requests re-preprocessing of a re-exported scan);
- ``preprocessed_volume`` is requested for every registered scan partition never attempted
  (:func:`new_scan`): a failed attempt is left alone until the scan is re-exported or
  ``layer-platform run`` retries it;
- ``layer_segmentation`` and ``layer_saliency`` follow their scan's upstream partition
  (identity mapping, so the three per-scan assets of one scan go in one run) or a change of
  the champion model (the data version of ``segmentation_model`` / ``pain_classifier`` is the
  champion's version, so a retrain whose challenger lost requests nothing) (:func:`per_scan`);
- the cohort tables of the ``saliency_summary`` step (``layer_ranking`` & co., one asset per
  table, written together) refresh once per wave of saliency updates, after the wave
  finished (:func:`cohort_summary`): a missing or failed scan never blocks them.

The sensor emits a backfill whenever a tick requests several partitions of an asset; with the
assets' single-run backfill policy one run takes every new scan through all three per-scan
assets (not one run per asset per scan).
"""

import dagster as dg

from layer_platform.defs.assets.summary_tables import SUMMARY_ASSETS

AC = dg.AutomationCondition

#: The trained models: downstream partitions follow their *data version* (the champion), not
#: each materialization (a challenger that lost changes nothing).
MODEL_ASSETS = dg.AssetSelection.assets("segmentation_model", "pain_classifier")
#: Assets the automation sensor evaluates (the others are run by the sensor, the schedule, the
#: CLI or by hand).
AUTOMATED_ASSETS = dg.AssetSelection.assets(
    "preprocessed_volume", "layer_segmentation", "layer_saliency", *SUMMARY_ASSETS
)
#: How often the automation sensor evaluates (seconds).
AUTOMATION_INTERVAL_S = 15


def new_scan() -> dg.AutomationCondition:
    """A registered scan partition that was never attempted, once intake has finished."""
    return (
        AC.missing() & ~AC.execution_failed() & ~AC.in_progress() & ~AC.any_deps_in_progress()
    ).with_label("registered scan not yet preprocessed")


def per_scan(*, models_may_be_missing: bool = False) -> dg.AutomationCondition:
    """The scan's upstream partition updated (or is requested in this tick, so both go in one
    run), a champion model changed, or the partition became missing; never while upstream is
    in progress. ``models_may_be_missing``: a model that was never materialized does not block
    (the asset skips what has no champion)."""
    scan_updated = AC.any_deps_updated().ignore(MODEL_ASSETS).with_label("scan updated upstream")
    champion_changed = (
        AC.any_deps_match(AC.data_version_changed())
        .allow(MODEL_ASSETS)
        .with_label("champion model changed")
    )
    deps_missing = AC.any_deps_missing()
    if models_may_be_missing:
        deps_missing = deps_missing.ignore(MODEL_ASSETS)
    return (
        (AC.newly_missing() | scan_updated | champion_changed).since_last_handled()
        & ~deps_missing
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("scan or champion changed")


def cohort_summary() -> dg.AutomationCondition:
    """Once per wave of per-scan updates, after the wave (no scan missing or failed blocks it).

    The summary tables are written by one step, so one table derived from another
    (``driver_recovery`` from ``layer_ranking``) is updated with it: that update is not a
    reason to run the step again."""
    upstream_updated = AC.any_deps_updated().ignore(dg.AssetSelection.assets(*SUMMARY_ASSETS))
    return (
        (AC.newly_missing() | upstream_updated).since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("saliency updated")


automation_sensor = dg.AutomationConditionSensorDefinition(
    "layer_automation",
    target=AUTOMATED_ASSETS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=AUTOMATION_INTERVAL_S,
    description="Evaluates the automation conditions of the per-scan assets and the cohort "
    "summary: new scans flow preprocessing → segmentation → saliency in batched runs with the "
    "current champions; a new champion recomputes every scan; then the summary refreshes.",
)
