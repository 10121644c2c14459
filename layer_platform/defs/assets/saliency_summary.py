"""``layer_saliency_summary``: the cohort tables over the champions' ``layer_saliency`` rows."""

import datetime as dt

import dagster as dg
import pandas as pd

from layer_platform.attribution import AttributionConfig
from layer_platform.attribution.champions import development_table
from layer_platform.attribution.randomization_run import (
    RandomizationSettings,
    champion_randomization,
)
from layer_platform.classification.modes import INPUT_MODES
from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.assets.saliency import layer_saliency
from layer_platform.defs.assets.saliency_summary_checks import (
    SUMMARY_CHECK_SPECS,
    model_randomization,
    randomization_not_run,
    summary_non_empty,
)
from layer_platform.defs.automation import cohort_summary
from layer_platform.defs.resources import StorageResource
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.imaging.figures import png_to_markdown
from layer_platform.saliency_names import ABLATION_METHOD
from layer_platform.settings import LayerPaths
from layer_platform.simulation.ground_truth import ground_truth_path, load_ground_truth
from layer_platform.statistics import (
    cohort_tables,
    driver_recovery_rows,
    markdown_table,
    planted_drivers,
    results_markdown,
)
from layer_platform.statistics.figures import ranking_bars_png
from layer_platform.tracking.mlflow_registry import Tracking, champion
from layer_platform.tracking.names import registered_name
from layer_platform.warehouse.queries import champion_rows, classifier_skill
from layer_platform.warehouse.store import Replacement, utc_now


def _recovery(
    ranking: pd.DataFrame, versions: dict[str, str], paths: LayerPaths, now: dt.datetime
) -> tuple[str, dict[str, str | None], pd.DataFrame] | None:
    """On a simulated cohort: (cohort name, planted drivers, ``driver_recovery`` rows)."""
    truth_file = ground_truth_path(paths.landing)
    if not truth_file.is_file() or ranking.empty:
        return None
    truth = load_ground_truth(truth_file)
    cohort = f"simulated seed={truth.config.seed} subjects={len(truth.subjects)}"
    drivers = planted_drivers(truth.config.bmode_driver, truth.config.swe_driver)
    recovery = driver_recovery_rows(ranking, drivers, cohort=cohort)
    recovery = recovery.assign(model_version=recovery["input_mode"].map(versions), computed_at=now)
    return cohort, drivers, recovery


@stage_asset(
    "saliency",
    deps=[layer_saliency],
    kinds={"duckdb", "python"},
    code_version="summary-v1",
    automation_condition=cohort_summary(),
    pool="warehouse",
    check_specs=SUMMARY_CHECK_SPECS,
)
def layer_saliency_summary(
    context: dg.AssetExecutionContext, storage: StorageResource, saliency: SaliencyResource
) -> dg.MaterializeResult:
    """Cohort statistics of the champion rows of ``layer_saliency``, read with SQL only.

    Per input mode, method, subgroup (all, MP, control, MP_correct) and layer: subject-level
    bootstrap CIs (``layer_summary``); the ranking by each method's score with the "does any
    layer stand out" verdict (``layer_ranking``); non-muscle vs muscle, paired by subject
    (``layer_comparison``); the Friedman test (``layer_friedman``); and, on a simulated cohort,
    where the planted drivers landed (``driver_recovery``).
    """
    saliency = saliency.validated()
    paths = storage.paths
    warehouse = storage.warehouse()
    tracking = Tracking.for_paths(paths)
    versions = {
        mode: str(found.version)
        for mode in INPUT_MODES
        if (found := champion(tracking, registered_name(mode))) is not None
    }
    frame = champion_rows(warehouse, versions)
    skills = {mode: classifier_skill(warehouse, mode, v) for mode, v in versions.items()}
    no_skill = {mode: skill.verdict() for mode, skill in skills.items() if not skill.beats_chance}
    if no_skill:
        context.log.warning(f"no layer finding for {sorted(no_skill)}: {no_skill}")
    tables = cohort_tables(
        frame,
        default_method=saliency.default_method,
        group=saliency.ranking_group,
        n_boot=saliency.n_boot,
        no_skill=no_skill,
    )
    ranking = tables["layer_ranking"]
    now = utc_now()
    writes = []  # one transaction: the cohort tables never describe two different runs
    for name, table in tables.items():
        if not table.empty:
            table = table.assign(
                model_name=table["input_mode"].map(registered_name),
                model_version=table["input_mode"].map(versions),
                computed_at=now,
            )
        writes.append(Replacement(name, table, key=None))
    metadata: dict = {
        "models": dg.MetadataValue.json({m: f"v{v}" for m, v in versions.items()}),
        "classifier_beats_chance": dg.MetadataValue.json(
            {mode: skill.beats_chance for mode, skill in skills.items()}
        ),
    }
    if (found := _recovery(ranking, versions, paths, now)) is not None:
        cohort, drivers, recovery = found
        writes.append(Replacement("driver_recovery", recovery, key="cohort", keys=[cohort]))
        metadata["planted_drivers"] = dg.MetadataValue.json(drivers)
        metadata["driver_recovery"] = dg.MetadataValue.md(markdown_table(recovery))
    warehouse.replace_all(writes)
    checks = [summary_non_empty(ranking, frame)]
    if ranking.empty:
        return dg.MaterializeResult(
            metadata=metadata, check_results=[*checks, randomization_not_run()]
        )

    headers = {
        mode: f"{registered_name(mode)} v{versions[mode]}, {rows['scan_id'].nunique()} scans,"
        f" {rows['subject_id'].nunique()} subjects"
        for mode, rows in frame.groupby("input_mode")
    }
    metadata["results"] = dg.MetadataValue.md(
        results_markdown(ranking, tables["layer_comparison"], headers=headers)
    )
    chart_methods = [saliency.default_method] + [
        m for m in saliency.methods if m == ABLATION_METHOD and m != saliency.default_method
    ]
    png = ranking_bars_png(ranking, chart_methods)
    metadata["ranking_chart"] = dg.MetadataValue.md(png_to_markdown(png, "layer ranking"))
    metadata["n_scans"] = int(frame["scan_id"].nunique())
    metadata["n_subjects"] = int(frame["subject_id"].nunique())
    settings = RandomizationSettings(
        tuple(saliency.methods), saliency.randomization_bar, saliency.randomization_scans
    )

    def config_for(mode: str) -> AttributionConfig:
        cohort = saliency.baseline == "cohort"
        table = development_table(warehouse, paths, tracking, mode) if cohort else None
        return saliency.reference_config(table)

    with saliency.threads():
        outcome = champion_randomization(
            frame,
            versions,
            tracking=tracking,
            warehouse=warehouse,
            paths=paths,
            settings=settings,
            config_for=config_for,
        )
    checks.append(model_randomization(outcome, settings))
    return dg.MaterializeResult(metadata=metadata, check_results=checks)
