"""Layer saliency: where each champion classifier's MP evidence sits, per scan and tissue layer.

``layer_saliency`` attributes every scan with every mode's champion (loaded by alias) and sums
each map inside the scan's six layers; ``layer_saliency_summary`` turns the champion rows into
the cohort tables (subject-level CIs, ranking, tests, planted-driver recovery).
"""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import torch

from layer_platform.attribution import ABLATION_METHOD, model_randomization_check
from layer_platform.attribution.batch import (
    Champion,
    SaliencySettings,
    ScanToAttribute,
    attribute_batch_scan,
    control_tables,
)
from layer_platform.attribution.batch import mode_input as _mode_input
from layer_platform.attribution.batch import read_labels as _labels
from layer_platform.batching import BatchOutcome, ScanResult
from layer_platform.classification.modes import INPUT_MODES
from layer_platform.classification.network import last_conv_block
from layer_platform.compute import select_device
from layer_platform.defs.assets.classification import pain_classifier, registered_name
from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.assets.segmentation import layer_segmentation
from layer_platform.defs.automation import cohort_summary, per_scan
from layer_platform.defs.gx_checks import gx_check_result
from layer_platform.defs.per_scan import check_result, run_scans
from layer_platform.defs.resources import StorageResource
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.imaging.figures import png_to_markdown
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.locations import remove_tree
from layer_platform.quality.expectations import validate_layer_saliency
from layer_platform.settings import LayerPaths
from layer_platform.simulation.ground_truth import ground_truth_path, load_ground_truth
from layer_platform.statistics import (
    comparison_rows,
    driver_recovery_rows,
    friedman_rows,
    planted_drivers,
    ranking_rows,
    results_markdown,
    sample_scans,
    score_column,
    summary_rows,
)
from layer_platform.statistics.figures import ranking_bars_png
from layer_platform.statistics.skill import AucEstimate, ClassifierSkill
from layer_platform.tracking.mlflow_registry import Tracking, champion, load_champion
from layer_platform.warehouse.store import Replacement, Warehouse

STAGE = "saliency"
#: The scans of a batch with their segmentation (scans without one are reported, not attributed).
BATCH_SCANS = """
    SELECT s.scan_id, s.subject_id, s.label, g.segmentation_source, g.qc_passed, g.path
    FROM scans s JOIN segmentations g USING (scan_id)
    WHERE s.scan_id IN (SELECT unnest(?)) ORDER BY s.scan_id
"""

#: One mode's champion rows, with whether the classifier called the scan right (the stored
#: out-of-fold or held-out prediction of that version, at its operating threshold).
CHAMPION_ROWS = """
    WITH called AS (
        SELECT scan_id, avg(probability) AS probability FROM predictions
        WHERE input_mode = $mode AND model_version = $version GROUP BY scan_id
    ), threshold AS (
        SELECT coalesce(max(value), 0.5) AS value FROM model_metrics
        WHERE input_mode = $mode AND model_version = $version
          AND fold = 'test' AND metric = 'threshold'
    )
    SELECT l.*, CASE l.label WHEN 'MP' THEN c.probability >= t.value
                             WHEN 'control' THEN c.probability < t.value END AS correct
    FROM layer_saliency l LEFT JOIN called c USING (scan_id) CROSS JOIN threshold t
    WHERE l.input_mode = $mode AND l.model_version = $version
    ORDER BY l.scan_id, l.method, l.layer_index
"""

GX_CHECK = "gx_layer_saliency"
#: name → (blocking, description). The per-scan checks quarantine the scan that fails them,
#: never the batch; the GX check on the rows that landed blocks (a platform fault).
SALIENCY_CHECKS = {
    "rows_complete": (False, "six rows per scan, mode and method (failing scans quarantined)"),
    "finite_values": (False, "every stored value is finite (failing scans quarantined)"),
    "ig_completeness": (False, "Integrated Gradients adds up to f(x) - f(baseline) (warn)"),
    "segmentation_qc": (False, "every scan had a QC-passed segmentation (others skipped; warn)"),
    GX_CHECK: (
        True,
        "GX on the rows written: one row per scan x mode x method x layer x model version,"
        " model_version present, shares and fractions in [0, 1], shares summing to 1 per map",
    ),
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _champion_model(tracking: Tracking, mode: str) -> tuple[torch.nn.Module, str]:
    """``mode``'s champion in eval mode on the device, and its version."""
    model, version = load_champion(tracking, registered_name(mode))
    return model.to(select_device("auto")).eval(), str(version.version)


def _champions(tracking: Tracking) -> dict[str, Champion]:
    """Per mode with a champion: the model in eval mode on the device, its Grad-CAM layer."""
    loaded = {}
    for mode in INPUT_MODES:
        if champion(tracking, registered_name(mode)) is None:
            continue
        model, version = _champion_model(tracking, mode)
        loaded[mode] = Champion(model, registered_name(mode), version, last_conv_block(model))
    return loaded


def _saliency_checks(outcome: BatchOutcome, skipped: list[str]) -> list[dg.AssetCheckResult]:
    """The batch's per-scan checks: which scans failed each (none of them blocks the batch)."""
    checks = [
        check_result(name, outcome.failing(name), blocking=True, n_checked=len(outcome.results))
        for name in ("rows_complete", "finite_values")
    ]
    checks.append(
        check_result(
            "ig_completeness",
            outcome.failing("ig_completeness"),
            blocking=False,
            n_checked=len(outcome.results),
        )
    )
    checks.append(
        check_result("segmentation_qc", skipped, blocking=False, n_checked=len(outcome.results))
    )
    return checks


def _drop_skipped(
    warehouse: Warehouse, paths: LayerPaths, scan_ids: list[str], models: dict[str, Champion]
) -> None:
    """Scans without a QC-passed segmentation keep no rows of the champions, and no maps."""
    if not scan_ids:
        return
    warehouse.replace_all(
        [
            Replacement(table, [], key="scan_id", keys=scan_ids, scope=scope)
            for table in ("layer_saliency", "attribution_diagnostics")
            for scope in ({"input_mode": m, "model_version": c.version} for m, c in models.items())
        ]
    )
    for scan_id in scan_ids:
        remove_tree(paths.artifacts / "saliency" / scan_id)


@stage_asset(
    STAGE,
    scan_partitioned=True,
    deps=[
        layer_segmentation,
        dg.AssetDep(pain_classifier, partition_mapping=dg.AllPartitionMapping()),
    ],
    kinds={"pytorch", "duckdb"},
    code_version="saliency-v1",
    automation_condition=per_scan(models_may_be_missing=True),
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(name, asset="layer_saliency", blocking=blocking, description=text)
        for name, (blocking, text) in SALIENCY_CHECKS.items()
    ],
)
def layer_saliency(
    context: dg.AssetExecutionContext, storage: StorageResource, saliency: SaliencyResource
) -> dg.MaterializeResult:
    """Per scan, input mode, method and tissue layer: how much of the champion's MP evidence
    sits in the layer (``layer_saliency`` table), plus per-scan diagnostics.

    Every mode's champion is loaded by alias; a mode is skipped for a scan without valid SWE,
    and a scan whose segmentation failed QC contributes no rows. Each scan is committed as
    soon as it is attributed: its maps (swapped in as a folder) and its rows for each champion
    version, in one transaction (older versions' rows stay). A scan that raises or fails a
    per-scan check is quarantined (stage ``saliency``); the batch goes on. Maps are saved as
    ``$LAYER_ARTIFACTS_DIR/saliency/<scan_id>/<mode>_<method>.nii.gz`` on the B-mode's grid.
    """
    saliency = saliency.validated()
    paths = storage.paths
    warehouse = storage.warehouse()
    keys = list(context.partition_keys)
    models = _champions(Tracking.for_paths(paths))
    missing_modes = [mode for mode in INPUT_MODES if mode not in models]
    if missing_modes:
        context.log.warning(f"no champion classifier for {missing_modes}: those modes skipped")
    tables = control_tables(warehouse, paths, list(models)) if saliency.baseline == "cohort" else {}
    scans = warehouse.query(BATCH_SCANS, [keys])
    unsegmented = sorted(set(keys) - set(scans["scan_id"]))
    qc_failed = sorted(scans.loc[~scans["qc_passed"].astype(bool), "scan_id"])
    _drop_skipped(warehouse, paths, [*unsegmented, *qc_failed], models)
    if qc_failed or unsegmented:
        context.log.warning(
            f"skipped {len(qc_failed)} scans failing segmentation QC and {len(unsegmented)}"
            f" without a segmentation: {', '.join([*qc_failed, *unsegmented][:20])}"
        )
    todo = {
        row.scan_id: ScanToAttribute(
            row.scan_id, row.subject_id, row.label, row.segmentation_source, row.path
        )
        for row in scans[scans["qc_passed"].astype(bool)].itertuples(index=False)
    }
    settings = SaliencySettings(
        methods=list(saliency.methods),
        default_method=saliency.default_method,
        score_column=score_column(saliency.default_method),
        baseline=saliency.baseline,
        make_config=saliency.attribution_config,
        preview_methods=list(saliency.preview_methods()),
        completeness_tolerance=saliency.completeness_tolerance,
    )
    previews = set(list(todo)[: saliency.preview_limit])
    device = select_device("auto")

    def work(scan_id: str) -> ScanResult:
        return attribute_batch_scan(
            todo[scan_id],
            models,
            tables,
            settings,
            paths.artifacts,
            device,
            preview=scan_id in previews,
        )

    with saliency.threads():
        outcome = run_scans(context, STAGE, list(todo), work, warehouse)
    landed = (
        warehouse.query(
            "SELECT * FROM layer_saliency WHERE scan_id IN (SELECT unnest(?))"
            " AND model_version IN (SELECT unnest(?)) ORDER BY ALL",
            [outcome.done, sorted({c.version for c in models.values()})],
        )
        if outcome.done and models
        else pd.DataFrame()
    )
    timings: dict[str, list[float]] = {}
    for result in outcome.results.values():
        for mode, seconds in result.seconds.items():
            timings.setdefault(mode, []).append(seconds)
    per_mode = {mode: round(float(np.mean(s)), 2) for mode, s in timings.items()}
    return dg.MaterializeResult(
        metadata={
            "n_scans": len(outcome.done),
            "n_rows": len(landed),
            "models": dg.MetadataValue.json({m: f"v{c.version}" for m, c in models.items()}),
            "modes_without_champion": dg.MetadataValue.json(missing_modes),
            "methods": dg.MetadataValue.json(list(saliency.methods)),
            "default_method": saliency.default_method,
            "baseline": dg.MetadataValue.json(
                {
                    m: saliency.baseline
                    if tables.get(m) is not None or saliency.baseline != "cohort"
                    else "layer_mean (no controls)"
                    for m in models
                }
            ),
            "seconds_per_scan_by_mode": dg.MetadataValue.json(per_mode),
            "seconds_total": round(outcome.total_seconds, 1),
            "skipped_qc_failed": dg.MetadataValue.json(qc_failed[:50]),
            "skipped_unsegmented": dg.MetadataValue.json(unsegmented[:50]),
            "quarantined": dg.MetadataValue.json(outcome.quarantined),
        },
        check_results=[
            *_saliency_checks(outcome, [*qc_failed, *unsegmented]),
            gx_check_result(GX_CHECK, validate_layer_saliency(landed) if len(landed) else []),
        ],
    )


def _markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


SUMMARY_TABLES = ("layer_summary", "layer_ranking", "layer_comparison", "layer_friedman")


def champion_rows(warehouse: Warehouse, versions: dict[str, str]) -> pd.DataFrame:
    """``layer_saliency`` rows of each mode's champion version, with a ``correct`` column."""
    if not versions or not warehouse.table_exists("layer_saliency"):
        return pd.DataFrame()
    frames = [
        warehouse.query(CHAMPION_ROWS, {"mode": mode, "version": version})
        for mode, version in versions.items()
    ]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


#: A champion's AUC and its CI, cross-validated (``cv``) and held out (``test``).
CLASSIFIER_AUC = """
    SELECT fold, metric, value FROM model_metrics
    WHERE input_mode = $mode AND model_version = $version AND fold IN ('cv', 'test')
      AND metric IN ('auc', 'auc_ci_low', 'auc_ci_high')
"""


def classifier_skill(warehouse: Warehouse, mode: str, version: str) -> ClassifierSkill:
    """What ``pain_classifier`` recorded for this champion (None where it recorded nothing)."""
    if not warehouse.table_exists("model_metrics"):
        return ClassifierSkill(None, None)
    found = warehouse.query(CLASSIFIER_AUC, {"mode": mode, "version": version})
    values = {(row.fold, row.metric): float(row.value) for row in found.itertuples(index=False)}

    def estimate(fold: str) -> AucEstimate | None:
        keys = [(fold, m) for m in ("auc", "auc_ci_low", "auc_ci_high")]
        return AucEstimate(*(values[k] for k in keys)) if all(k in values for k in keys) else None

    return ClassifierSkill(estimate("cv"), estimate("test"))


#: Randomization results already computed for a champion version with the current settings.
CACHED_RANDOMIZATION = """
    SELECT method, layer_rho, voxel_rho, passed FROM randomization_checks
    WHERE input_mode = $mode AND model_version = $version AND bar = $bar AND n_scans = $n_scans
"""


def _randomization(
    frame: pd.DataFrame,
    versions: dict[str, str],
    tracking: Tracking,
    warehouse: Warehouse,
    paths: LayerPaths,
    saliency: SaliencyResource,
) -> dg.AssetCheckResult:
    """Model-randomization sanity check on a few scans per mode (Adebayo et al. 2018).

    A verdict belongs to a champion version and the check's settings, so it is computed once
    and kept in ``randomization_checks``; a refresh after new scans reuses it (the check
    re-attributes its sample with the trained and a re-initialized model: most of a refresh).
    """
    results: dict[str, dict] = {}
    reused: list[str] = []
    for mode, version in versions.items():
        if not (frame["input_mode"] == mode).any():
            continue
        settings = {"bar": saliency.randomization_bar, "n_scans": saliency.randomization_scans}
        if warehouse.table_exists("randomization_checks"):
            cached = warehouse.query(
                CACHED_RANDOMIZATION, {"mode": mode, "version": version, **settings}
            )
            known = {row.method: row for row in cached.itertuples(index=False)}
        else:
            known = {}
        if set(saliency.methods) <= set(known):
            reused.append(mode)
            for method in saliency.methods:
                found = known[method]
                results[f"{mode}/{method}"] = {
                    "layer_rho": found.layer_rho,
                    "voxel_rho": None if pd.isna(found.voxel_rho) else found.voxel_rho,
                    "passed": bool(found.passed),
                }
            continue
        model, _ = _champion_model(tracking, mode)
        computed = _randomize_mode(mode, model, frame, warehouse, paths, saliency)
        rows = [
            {
                "input_mode": mode,
                "method": method,
                "model_name": registered_name(mode),
                "model_version": version,
                **settings,
                **outcome,
                "computed_at": _now(),
            }
            for method, outcome in computed.items()
        ]
        scope = {"model_version": version}
        warehouse.replace("randomization_checks", rows, key="input_mode", keys=[mode], scope=scope)
        results.update({f"{mode}/{method}": outcome for method, outcome in computed.items()})
    flagged = [name for name, outcome in results.items() if not outcome["passed"]]
    return dg.AssetCheckResult(
        check_name="model_randomization",
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "bar": saliency.randomization_bar,
            "flagged_methods": dg.MetadataValue.json(flagged),
            "correlations": dg.MetadataValue.json(results),
            "n_scans_per_mode": saliency.randomization_scans,
            "reused_for_modes": dg.MetadataValue.json(reused),
        },
    )


def _randomize_mode(
    mode: str,
    model: torch.nn.Module,
    frame: pd.DataFrame,
    warehouse: Warehouse,
    paths: LayerPaths,
    saliency: SaliencyResource,
) -> dict[str, dict]:
    """Each method's randomization outcome for ``mode`` on a sample of its scans."""
    device = select_device("auto")
    paths_by_scan = dict(
        warehouse.query("SELECT scan_id, path FROM segmentations").itertuples(index=False)
    )
    scans = []
    for scan_id in sample_scans(frame[frame["input_mode"] == mode], saliency.randomization_scans):
        stored = load_preprocessed(paths.artifacts / "preprocessed" / scan_id)
        x = _mode_input(mode, stored)
        if x is not None:
            scans.append((torch.as_tensor(x[None], device=device), _labels(paths_by_scan[scan_id])))
    if not scans:
        return {}
    # One config serves all sampled scans, so the cohort reference is the per-layer table
    # (SWE's unmeasured voxels get the layer mean here, unlike in `layer_saliency`).
    table = (
        control_tables(warehouse, paths, [mode]).get(mode)
        if saliency.baseline == "cohort"
        else None
    )
    config = (
        saliency.attribution_config(cohort_fill=table)
        if table is not None
        else saliency.attribution_config(
            baseline="layer_mean" if saliency.baseline == "cohort" else None
        )
    )
    outcomes = {}
    for method in saliency.methods:
        report = model_randomization_check(
            method,
            model,
            scans,
            target_layer=last_conv_block(model),
            config=config,
            bar=saliency.randomization_bar,
        )
        final = report.steps[-1]
        outcomes[method] = {
            "layer_rho": round(final.layer_correlation, 3),
            "voxel_rho": None
            if final.voxel_correlation is None
            else round(final.voxel_correlation, 3),
            "passed": report.passed,
        }
    return outcomes


@stage_asset(
    "saliency",
    deps=[layer_saliency],
    kinds={"duckdb", "python"},
    code_version="summary-v1",
    automation_condition=cohort_summary(),
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(
            "summary_non_empty",
            asset="layer_saliency_summary",
            blocking=True,
            description="the champion models have layer rows to rank",
        ),
        dg.AssetCheckSpec(
            "model_randomization",
            asset="layer_saliency_summary",
            description="layer profiles change when the model's weights are randomized (warn)",
        ),
    ],
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
    n_boot = saliency.n_boot
    skills = {
        mode: classifier_skill(warehouse, mode, version) for mode, version in versions.items()
    }
    no_skill = {mode: skill.verdict() for mode, skill in skills.items() if not skill.beats_chance}
    if no_skill:
        context.log.warning(f"no layer finding for {sorted(no_skill)}: {no_skill}")
    if frame.empty:
        tables = {name: pd.DataFrame() for name in SUMMARY_TABLES}
        ranking = comparison = pd.DataFrame()
    else:
        ranking = ranking_rows(
            frame,
            default_method=saliency.default_method,
            group=saliency.ranking_group,
            n_boot=n_boot,
            no_skill=no_skill,
        )
        comparison = comparison_rows(frame, n_boot=n_boot)
        tables = {
            "layer_summary": summary_rows(frame, n_boot=n_boot),
            "layer_ranking": ranking,
            "layer_comparison": comparison,
            "layer_friedman": friedman_rows(frame, n_boot=n_boot, no_skill=no_skill),
        }
    now = _now()
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
    truth_file = ground_truth_path(paths.landing)
    if truth_file.is_file() and not ranking.empty:
        truth = load_ground_truth(truth_file)
        cohort = f"simulated seed={truth.config.seed} subjects={len(truth.subjects)}"
        drivers = planted_drivers(truth.config.bmode_driver, truth.config.swe_driver)
        recovery = driver_recovery_rows(ranking, drivers, cohort=cohort)
        recovery = recovery.assign(
            model_version=recovery["input_mode"].map(versions), computed_at=now
        )
        writes.append(Replacement("driver_recovery", recovery, key="cohort", keys=[cohort]))
        metadata["planted_drivers"] = dg.MetadataValue.json(drivers)
        metadata["driver_recovery"] = dg.MetadataValue.md(_markdown_table(recovery))

    warehouse.replace_all(writes)
    checks = [
        dg.AssetCheckResult(
            check_name="summary_non_empty",
            passed=not ranking.empty,
            metadata={"n_ranking_rows": len(ranking), "n_saliency_rows": len(frame)},
        )
    ]
    if ranking.empty:
        checks.append(
            dg.AssetCheckResult(
                check_name="model_randomization",
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"reason": "no champion rows to check"},
            )
        )
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    headers = {}
    for mode, rows in frame.groupby("input_mode"):
        headers[mode] = (
            f"{registered_name(mode)} v{versions[mode]}, {rows['scan_id'].nunique()} scans,"
            f" {rows['subject_id'].nunique()} subjects"
        )
    metadata["results"] = dg.MetadataValue.md(
        results_markdown(ranking, comparison, headers=headers)
    )
    chart_methods = [saliency.default_method] + [
        m for m in saliency.methods if m == ABLATION_METHOD and m != saliency.default_method
    ]
    png = ranking_bars_png(ranking, chart_methods)
    metadata["ranking_chart"] = dg.MetadataValue.md(png_to_markdown(png, "layer ranking"))
    metadata["n_scans"] = int(frame["scan_id"].nunique())
    metadata["n_subjects"] = int(frame["subject_id"].nunique())
    with saliency.threads():
        checks.append(_randomization(frame, versions, tracking, warehouse, paths, saliency))
    return dg.MaterializeResult(metadata=metadata, check_results=checks)
