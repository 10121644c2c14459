"""``saliency_summary``: the cohort tables over the champions' ``layer_saliency`` rows.

One step, one transaction, several assets: each warehouse table it writes is its own asset
(``summary_tables.SUMMARY_ASSETS``), with its column schema and row count, so the catalog and
the lineage show ``layer_ranking`` & co. rather than one opaque "summary".
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from layer_platform.attribution.champions import reference_configs
from layer_platform.attribution.data_randomization import protocol as data_randomization_protocol
from layer_platform.attribution.faithfulness_run import champion_faithfulness
from layer_platform.attribution.randomization_run import PROTOCOL as RANDOMIZATION_PROTOCOL
from layer_platform.attribution.randomization_run import (
    ConfigFor,
    RandomizationOutcome,
    RandomizationSettings,
    champion_randomization,
)
from layer_platform.defs.assets.conventions import stage_spec
from layer_platform.defs.assets.saliency import layer_saliency
from layer_platform.defs.assets.saliency_summary_checks import (
    SUMMARY_CHECK_SPECS,
    model_randomization,
    randomization_not_run,
    summary_non_empty,
)
from layer_platform.defs.assets.summary_tables import (
    FAITHFULNESS,
    RANDOMIZATION,
    RANKING,
    RECOVERY,
    SUMMARY_ASSETS,
)
from layer_platform.defs.automation import cohort_summary
from layer_platform.defs.catalog import tables_metadata
from layer_platform.defs.resources import StorageResource
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.imaging.figures import png_to_markdown
from layer_platform.saliency_names import ABLATION_METHOD
from layer_platform.settings import LayerPaths
from layer_platform.simulation.ground_truth import ground_truth_path, load_ground_truth
from layer_platform.statistics import (
    Evidence,
    RankingSpec,
    cohort_tables,
    driver_recovery_rows,
    faithfulness_markdown,
    markdown_table,
    planted_drivers,
    results_markdown,
)
from layer_platform.statistics.figures import ranking_bars_png
from layer_platform.timestamps import utc_now
from layer_platform.tracking.mlflow_registry import Tracking, champion_versions
from layer_platform.tracking.names import registered_name
from layer_platform.warehouse.queries import (
    champion_rows,
    classifier_skills,
    data_randomization_passed,
)
from layer_platform.warehouse.schema import DESCRIPTIONS
from layer_platform.warehouse.store import Replacement, Warehouse


def _recovery(
    ranking: pd.DataFrame, versions: dict[str, str], paths: LayerPaths, now: dt.datetime
) -> tuple[str, dict[str, str | None], pd.DataFrame] | None:
    """On a simulated cohort: (cohort name, planted drivers, ``driver_recovery`` rows)."""
    truth_file = ground_truth_path(paths.landing)
    if not truth_file.is_file() or ranking.empty:
        return None
    truth = load_ground_truth(truth_file)
    cohort = f"simulated seed={truth.config.seed} subjects={len(truth.subjects)}"
    config = truth.config
    drivers = planted_drivers(config.bmode_driver, config.swe_driver, config.bmode_driver2)
    recovery = driver_recovery_rows(ranking, drivers, cohort=cohort)
    recovery = recovery.assign(model_version=recovery["input_mode"].map(versions), computed_at=now)
    return cohort, drivers, recovery


def _ranking_metadata(
    ranking: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    frame: pd.DataFrame,
    versions: dict[str, str],
    saliency: SaliencyResource,
) -> dict:
    """The results table and the ranking chart, shown on ``layer_ranking``'s page."""
    headers = {
        mode: f"{registered_name(mode)} v{versions[mode]}, {rows['scan_id'].nunique()} scans,"
        f" {rows['subject_id'].nunique()} subjects"
        for mode, rows in frame.groupby("input_mode")
    }
    chart_methods = [saliency.default_method] + [
        m for m in saliency.methods if m == ABLATION_METHOD and m != saliency.default_method
    ]
    png = ranking_bars_png(ranking, chart_methods)
    return {
        "results": dg.MetadataValue.md(
            results_markdown(ranking, tables["layer_comparison"], headers=headers)
        ),
        "ranking_chart": dg.MetadataValue.md(png_to_markdown(png, "layer ranking")),
        "n_scans": int(frame["scan_id"].nunique()),
        "n_subjects": int(frame["subject_id"].nunique()),
    }


def _settings(saliency: SaliencyResource) -> RandomizationSettings:
    return RandomizationSettings(
        tuple(saliency.sanity_methods()),
        saliency.randomization_bar,
        saliency.randomization_scans,
        f"{RANDOMIZATION_PROTOCOL} {saliency.attribution_settings()}",
    )


def _randomization(
    frame: pd.DataFrame,
    versions: dict[str, str],
    saliency: SaliencyResource,
    warehouse: Warehouse,
    tracking: Tracking,
    paths: LayerPaths,
    config_for: ConfigFor,
) -> RandomizationOutcome:
    """The model-randomization check of every champion, each scan attributed exactly as the
    reported run attributed it (``scan_config``)."""
    if frame.empty:
        return RandomizationOutcome()
    with saliency.threads():
        return champion_randomization(
            frame,
            versions,
            tracking=tracking,
            warehouse=warehouse,
            paths=paths,
            settings=_settings(saliency),
            config_for=config_for,
        )


def _faithfulness(
    frame: pd.DataFrame,
    saliency: SaliencyResource,
    warehouse: Warehouse,
    tracking: Tracking,
    paths: LayerPaths,
    config_for: ConfigFor,
) -> pd.DataFrame:
    """``method_faithfulness`` over the champions' held-out scans (empty without any)."""
    if frame.empty or saliency.faithfulness_orders == 0:
        return pd.DataFrame()
    with saliency.threads():
        return champion_faithfulness(
            frame,
            tracking=tracking,
            warehouse=warehouse,
            paths=paths,
            settings=saliency.faithfulness_settings(),
            config_for=config_for,
            n_boot=saliency.n_boot,
        )


#: Where each table comes from (lineage): the table assets it is derived from, else the
#: per-scan ``layer_saliency`` rows.
DERIVED_FROM: dict[str, str] = {RECOVERY: RANKING}
#: Tables written only on some runs: driver recovery needs a simulated cohort's ground truth,
#: the randomization check needs champion rows, faithfulness held-out scans.
SOMETIMES_WRITTEN = frozenset({RECOVERY, RANDOMIZATION, FAITHFULNESS})


def _spec(table: str) -> dg.AssetSpec:
    return stage_spec(
        "saliency",
        table,
        kinds={"duckdb", "python"},
        description=DESCRIPTIONS[table],
        deps=[DERIVED_FROM.get(table, layer_saliency.key)],
        skippable=table in SOMETIMES_WRITTEN,
        code_version="summary-v1",
        automation_condition=cohort_summary(),
    )


@dg.multi_asset(
    name="saliency_summary",
    specs=[_spec(table) for table in SUMMARY_ASSETS],
    check_specs=SUMMARY_CHECK_SPECS,
    pool="warehouse",
)
def saliency_summary(
    context: dg.AssetExecutionContext, storage: StorageResource, saliency: SaliencyResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Cohort statistics of the champion rows of ``layer_saliency``, read with SQL.

    Per input mode, method, subgroup (all, MP, control, MP_correct) and layer: subject-level
    bootstrap CIs (``layer_summary``); the ranking by each method's score with the "does any
    layer stand out" verdict (``layer_ranking``); non-muscle vs muscle, paired by subject
    (``layer_comparison``); the Friedman test (``layer_friedman``); on a simulated cohort,
    where the planted drivers landed (``driver_recovery``); the model-randomization check of
    each champion (``randomization_checks``); each method's faithfulness on the held-out scans
    (``method_faithfulness``). Each table materializes as its own asset.
    """
    saliency = saliency.validated()
    paths = storage.paths
    warehouse = storage.warehouse()
    tracking = Tracking.for_paths(paths)
    versions = champion_versions(tracking)
    frame = champion_rows(warehouse, versions)
    skills, site_skills = classifier_skills(warehouse, versions)
    no_skill = sorted(m for m in versions if m not in skills or not skills[m].beats_chance)
    if no_skill:
        context.log.warning(f"no layer finding for {no_skill}: classifier at chance or untested")
    # the randomization check is a gate of every verdict, so it runs before the tables
    # both checks re-attribute as the reported run did; each champion's reference is read once
    config_for = reference_configs(
        saliency.attribution_config, saliency.baseline, warehouse, paths, tracking
    )
    outcome = _randomization(frame, versions, saliency, warehouse, tracking, paths, config_for)
    spec = RankingSpec(
        default_method=saliency.default_method,
        evidence=Evidence(
            skill=skills,
            model_randomization=outcome.passed(),
            # stored by `layer-platform sanity` for these champion versions (absent: not run)
            data_randomization=data_randomization_passed(
                warehouse, versions, protocol=data_randomization_protocol(saliency.ranking_group)
            ),
            within_site=site_skills,
        ),
        group=saliency.ranking_group,
    )
    tables = cohort_tables(frame, spec, n_boot=saliency.n_boot)
    ranking = tables[RANKING]
    tables[FAITHFULNESS] = _faithfulness(frame, saliency, warehouse, tracking, paths, config_for)
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
    models = dg.MetadataValue.json({m: f"v{v}" for m, v in versions.items()})
    metadata: dict[str, dict] = {n: {"models": models} for n in tables if n != FAITHFULNESS}
    metadata[RANKING]["classifier_skill"] = dg.MetadataValue.json(
        {
            m: {"overall": str(skills.get(m)), "within_sites": str(site_skills.get(m))}
            for m in versions
        }
    )
    if (found := _recovery(ranking, versions, paths, now)) is not None:
        cohort, drivers, recovery = found
        writes.append(Replacement(RECOVERY, recovery, key="cohort", keys=[cohort]))
        metadata[RECOVERY] = {
            "cohort": cohort,
            "planted_drivers": dg.MetadataValue.json(drivers),
            "recovery": dg.MetadataValue.md(markdown_table(recovery)),
        }
    warehouse.replace_all(writes)
    checks = [summary_non_empty(ranking, frame)]
    if ranking.empty:
        checks.append(randomization_not_run())
    else:
        metadata[RANKING] |= _ranking_metadata(ranking, tables, frame, versions, saliency)
        if not tables[FAITHFULNESS].empty:  # beside the ranking, and on its own asset
            shown = dg.MetadataValue.md(faithfulness_markdown(tables[FAITHFULNESS]))
            metadata[RANKING]["faithfulness"] = shown
            metadata[FAITHFULNESS] = {"models": models, "faithfulness": shown}
        checks.append(model_randomization(outcome, _settings(saliency)))
        metadata[RANDOMIZATION] = {"models": models}
    # one catalog read for every table written, after the last write
    for table, entries in tables_metadata(warehouse, list(metadata)).items():
        metadata[table] |= entries
    for table, entries in metadata.items():
        yield dg.MaterializeResult(asset_key=table, metadata=entries)
    yield from checks
