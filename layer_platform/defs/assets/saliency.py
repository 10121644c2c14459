"""``layer_saliency``: where each champion classifier's MP evidence sits, per scan and layer.

Every scan is attributed with every mode's champion (loaded by alias) and each map summed
inside the scan's six layers, one scan committed at a time (``attribution.batch``);
``saliency_summary`` turns the champion rows into the cohort tables.
"""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd

from layer_platform.attribution.batch import (
    Champion,
    SaliencySettings,
    ScanToAttribute,
    attribute_batch_scan,
)
from layer_platform.attribution.champions import champion_references, load_champions
from layer_platform.batching import BatchOutcome, ScanResult
from layer_platform.classification.modes import INPUT_MODES
from layer_platform.compute import select_device
from layer_platform.defs.assets.classification import pain_classifier
from layer_platform.defs.assets.conventions import check_specs, stage_asset
from layer_platform.defs.assets.segmentation import layer_segmentation
from layer_platform.defs.automation import per_scan
from layer_platform.defs.catalog import table_metadata
from layer_platform.defs.gx_checks import gx_check_result
from layer_platform.defs.per_scan import check_result, run_scans
from layer_platform.defs.resources import StorageResource
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.locations import remove_tree
from layer_platform.quality.expectations import validate_layer_saliency
from layer_platform.saliency_names import score_column
from layer_platform.settings import LayerPaths
from layer_platform.tracking.mlflow_registry import Tracking
from layer_platform.warehouse.pending import current_saliency
from layer_platform.warehouse.store import Replacement, Warehouse

STAGE = "saliency"
#: The scans of a batch with their segmentation (scans without one are reported, not attributed).
BATCH_SCANS = """
    SELECT s.scan_id, s.subject_id, s.label, g.segmentation_source, g.qc_passed, g.path
    FROM scans s JOIN segmentations g USING (scan_id)
    WHERE s.scan_id IN (SELECT unnest(?)) ORDER BY s.scan_id
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
    code_version="saliency-v2",
    automation_condition=per_scan(models_may_be_missing=True),
    pool="warehouse",
    check_specs=check_specs("layer_saliency", SALIENCY_CHECKS),
)
def layer_saliency(
    context: dg.AssetExecutionContext, storage: StorageResource, saliency: SaliencyResource
) -> dg.MaterializeResult:
    """Per scan, input mode, method and tissue layer: how much of the champion's MP evidence
    sits in the layer (``layer_saliency`` table), plus per-scan diagnostics.

    Every mode's champion is loaded by alias; a mode is skipped for a scan without valid SWE,
    and a scan whose segmentation failed QC contributes no rows. Each scan is committed as
    soon as it is attributed: its maps (swapped in as a folder) and its rows for each champion
    version, in one transaction (older versions' rows stay), one mode at a time; modes whose
    rows are already up to date are kept (``keep_current``). A scan that raises or fails a
    per-scan check is quarantined (stage ``saliency``); the batch goes on. Maps are saved as
    ``$LAYER_ARTIFACTS_DIR/saliency/<scan_id>/<mode>_<method>.nii.gz`` on the B-mode's grid.
    """
    saliency = saliency.validated()
    paths = storage.paths
    warehouse = storage.warehouse()
    keys = list(context.partition_keys)
    tracking = Tracking.for_paths(paths)
    models = load_champions(tracking, INPUT_MODES)
    missing_modes = [mode for mode in INPUT_MODES if mode not in models]
    if missing_modes:
        context.log.warning(f"no champion classifier for {missing_modes}: those modes skipped")
    references = (
        champion_references(warehouse, paths, tracking, models)
        if saliency.baseline == "cohort"
        else {}
    )
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
        attribution_settings=saliency.attribution_settings(),
    )
    previews = set(list(todo)[: saliency.preview_limit])
    device = select_device("auto")
    versions = {mode: champ.version for mode, champ in models.items()}
    current = (
        current_saliency(
            warehouse, versions, list(todo), list(saliency.methods), settings.attribution_settings
        )
        if saliency.keep_current
        else {}
    )
    if current:
        context.log.info(
            f"{len(current)} scans keep their up-to-date modes (keep_current); the rest of"
            " their modes are attributed"
        )

    def work(scan_id: str) -> Iterator[ScanResult]:
        return attribute_batch_scan(
            todo[scan_id],
            models,
            references,
            settings,
            paths.artifacts,
            device,
            preview=scan_id in previews,
            current=current.get(scan_id, set()),
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
                    m: (
                        f"cohort (frozen reference {references[m].sha256[:12]})"
                        if references.get(m) is not None
                        else saliency.baseline
                        if saliency.baseline != "cohort"
                        else "layer_mean (no frozen reference)"
                    )
                    for m in models
                }
            ),
            "seconds_per_scan_by_mode": dg.MetadataValue.json(per_mode),
            "seconds_total": round(outcome.total_seconds, 1),
            "skipped_qc_failed": dg.MetadataValue.json(qc_failed[:50]),
            "skipped_unsegmented": dg.MetadataValue.json(unsegmented[:50]),
            "quarantined": dg.MetadataValue.json(outcome.quarantined),
            **table_metadata(warehouse, "layer_saliency", "attribution_diagnostics"),
        },
        check_results=[
            *_saliency_checks(outcome, [*qc_failed, *unsegmented]),
            gx_check_result(GX_CHECK, validate_layer_saliency(landed) if len(landed) else []),
        ],
    )
