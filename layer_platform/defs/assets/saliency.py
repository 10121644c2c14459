"""``layer_saliency``: where each champion classifier's MP evidence sits, per scan and layer.

Every scan is attributed with every mode's champion (loaded by alias) and each map summed
inside the scan's six layers; ``saliency_summary`` turns the champion rows into the cohort
tables.
"""

import time
from collections import defaultdict
from dataclasses import asdict, dataclass

import dagster as dg
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from layer_platform.attribution import AttributionConfig, cohort_fill_volume, profile_scan
from layer_platform.attribution.cohort_reference import control_tables
from layer_platform.classification.modes import INPUT_MODES, no_signal_channels
from layer_platform.classification.modes import mode_input as _mode_input
from layer_platform.classification.network import last_conv_block
from layer_platform.compute import select_device
from layer_platform.defs.assets.classification import pain_classifier
from layer_platform.defs.assets.conventions import stage_asset
from layer_platform.defs.assets.segmentation import layer_segmentation
from layer_platform.defs.automation import per_scan
from layer_platform.defs.gx_checks import gx_check_result
from layer_platform.defs.resources import StorageResource
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.errors import ScanError
from layer_platform.imaging.figures import mid_slices_png, png_to_markdown
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.io import Volume, write_volume
from layer_platform.io import read_label_map as _labels
from layer_platform.locations import remove_tree
from layer_platform.quality.expectations import validate_layer_saliency
from layer_platform.saliency_names import ABLATION_METHOD, LAYER_VALUE_COLUMNS, score_column
from layer_platform.settings import LayerPaths
from layer_platform.tracking.mlflow_registry import Tracking, champion, load_champion_classifier
from layer_platform.tracking.names import registered_name
from layer_platform.warehouse.store import Replacement
from layer_platform.warehouse.store import utc_now as _now

# ``_mode_input``, ``_labels`` and ``_now`` are the old private names under which the batch
# loop below (being rewritten for per-scan commits) still calls these domain functions.

#: The scans of a batch with their segmentation (scans without one are reported, not attributed).
BATCH_SCANS = """
    SELECT s.scan_id, s.subject_id, s.label, g.segmentation_source, g.qc_passed, g.path
    FROM scans s JOIN segmentations g USING (scan_id)
    WHERE s.scan_id IN (SELECT unnest(?)) ORDER BY s.scan_id
"""

GX_CHECK = "gx_layer_saliency"
SALIENCY_CHECKS = {
    "rows_complete": (True, "six rows per scan, mode and method (shares: see the GX check)"),
    "finite_values": (True, "every stored value is finite (NULL only where documented)"),
    "ig_completeness": (False, "Integrated Gradients adds up to f(x) - f(baseline) (warn)"),
    "segmentation_qc": (False, "every scan had a QC-passed segmentation (others skipped; warn)"),
    GX_CHECK: (
        True,
        "GX on the rows written: one row per scan x mode x method x layer x model version,"
        " model_version present, shares and fractions in [0, 1], shares summing to 1 per map",
    ),
}


def _config(
    saliency: SaliencyResource,
    mode: str,
    table: np.ndarray | None,
    x: np.ndarray,
    labels: np.ndarray,
) -> AttributionConfig:
    """The scan's attribution settings: its own cohort reference volume when configured."""
    if saliency.baseline != "cohort":
        return saliency.attribution_config()
    if table is None:
        return saliency.attribution_config(baseline="layer_mean")
    fill = cohort_fill_volume(table, x, labels, no_signal_channels=no_signal_channels(mode))
    return saliency.attribution_config(cohort_fill=fill)


def _champions(tracking: Tracking) -> dict[str, tuple]:
    """Per mode with a champion: (model in eval mode on the device, version, Grad-CAM layer)."""
    loaded = {}
    for mode in INPUT_MODES:
        if champion(tracking, registered_name(mode)) is None:
            continue
        model, version = load_champion_classifier(tracking, mode)
        loaded[mode] = (model, version, last_conv_block(model))
    return loaded


def _saliency_checks(
    rows: list[dict], diagnostics: list[dict], skipped: list[str], tolerance: float
) -> list[dg.AssetCheckResult]:
    frame = pd.DataFrame(rows)
    incomplete: list[str] = []
    non_finite: list[str] = []
    if not frame.empty:
        for (scan_id, mode, method), part in frame.groupby(["scan_id", "input_mode", "method"]):
            if not (part["layer"].nunique() == 6 and len(part) == 6):
                incomplete.append(f"{scan_id}/{mode}/{method}")
        values = frame[list(LAYER_VALUE_COLUMNS)].to_numpy(dtype=float)
        bad = np.isinf(values).any(axis=1) | frame["volume_fraction"].isna().to_numpy()
        non_finite = sorted(set(frame.loc[bad, "scan_id"]))
    errors = pd.DataFrame(diagnostics)
    if not errors.empty:
        errors = errors[errors["metric"] == "completeness_error"]
    relative = errors["value"].to_numpy(dtype=float) if not errors.empty else np.array([])
    over = errors[errors["value"] > tolerance] if not errors.empty else errors
    zero_maps = 0
    if not frame.empty:
        share_nan = frame[frame["method"] != ABLATION_METHOD].groupby(
            ["scan_id", "input_mode", "method"]
        )["saliency_share"]
        zero_maps = int(share_nan.apply(lambda s: s.isna().all()).sum())

    def result(name: str, passed: bool, metadata: dict) -> dg.AssetCheckResult:
        blocking = SALIENCY_CHECKS[name][0]
        return dg.AssetCheckResult(
            check_name=name,
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
            metadata=metadata,
        )

    return [
        result(
            "rows_complete",
            not incomplete,
            {
                "failing": dg.MetadataValue.json(incomplete[:50]),
                "n_rows": len(frame),
                "zero_maps": zero_maps,
            },
        ),
        result(
            "finite_values",
            not non_finite,
            {"failing_scans": dg.MetadataValue.json(non_finite[:50])},
        ),
        result(
            "ig_completeness",
            bool(relative.size == 0 or np.nanmax(relative) <= tolerance),
            {
                "tolerance": tolerance,
                "max_relative_error": float(np.nanmax(relative)) if relative.size else 0.0,
                "median_relative_error": float(np.nanmedian(relative)) if relative.size else 0.0,
                "n_checked": int(relative.size),
                "over_tolerance": dg.MetadataValue.json(
                    [f"{r.scan_id}/{r.input_mode}" for r in over.itertuples()][:50]
                ),
            },
        ),
        result(
            "segmentation_qc",
            not skipped,
            {"skipped_scans": dg.MetadataValue.json(skipped[:50]), "n_skipped": len(skipped)},
        ),
    ]


@dataclass
class _Batch:
    rows: list[dict]
    diagnostics: list[dict]
    failed: list[str]
    seconds: dict[str, list[float]]
    total_seconds: float


def _attribute_batch(
    context: dg.AssetExecutionContext,
    todo: pd.DataFrame,
    models: dict[str, tuple],
    tables: dict[str, np.ndarray | None],
    saliency: SaliencyResource,
    paths: LayerPaths,
) -> _Batch:
    """Attribute every scan of ``todo`` with every mode's champion; save maps, previews."""
    device = select_device("auto")
    now = _now()
    rows: list[dict] = []
    diagnostics: list[dict] = []
    failed: list[str] = []
    seconds: dict[str, list[float]] = defaultdict(list)
    started = time.perf_counter()
    for position, scan in enumerate(
        tqdm(todo.itertuples(index=False), total=len(todo), desc="saliency", unit="scan")
    ):
        stored = load_preprocessed(paths.artifacts / "preprocessed" / scan.scan_id)
        labels = _labels(scan.path)
        out_dir = paths.artifacts / "saliency" / scan.scan_id
        scan_rows, scan_diagnostics, maps, metadata = [], [], {}, {}
        try:
            for mode, (model, version, target) in models.items():
                x = _mode_input(mode, stored)
                if x is None:
                    continue
                tic = time.perf_counter()
                profiles = profile_scan(
                    model,
                    torch.as_tensor(x[None], device=device),
                    labels,
                    saliency.methods,
                    _config(saliency, mode, tables.get(mode), x, labels),
                    target_layer=target,
                )
                seconds[mode].append(time.perf_counter() - tic)
                for method, profile in profiles.items():
                    maps[(mode, method)] = profile.voxel_map
                    scan_rows += [
                        {
                            "scan_id": scan.scan_id,
                            "subject_id": scan.subject_id,
                            "label": scan.label,
                            "input_mode": mode,
                            "method": method,
                            "model_name": registered_name(mode),
                            "model_version": version,
                            **asdict(row),
                            "segmentation_source": scan.segmentation_source,
                            "computed_at": now,
                        }
                        for row in profile.rows
                    ]
                    scan_diagnostics += [
                        {
                            "scan_id": scan.scan_id,
                            "input_mode": mode,
                            "method": method,
                            "model_version": version,
                            "metric": metric,
                            "value": float(value),
                            "computed_at": now,
                        }
                        for metric, value in profile.diagnostics.items()
                    ]
                scores = {
                    r.layer: getattr(r, score_column(saliency.default_method))
                    for r in profiles[saliency.default_method].rows
                }
                finite = {k: v for k, v in scores.items() if v is not None and np.isfinite(v)}
                if finite:
                    metadata[f"{mode}_top_layer"] = max(finite, key=finite.__getitem__)
        except ScanError as exc:
            context.log.error(f"saliency failed for {scan.scan_id}: {exc}")
            failed.append(scan.scan_id)
            continue
        for (mode, method), voxel_map in maps.items():
            write_volume(out_dir / f"{mode}_{method}.nii.gz", Volume(voxel_map, stored.spacing))
        rows += scan_rows
        diagnostics += scan_diagnostics
        if position < saliency.preview_limit:
            for mode in models:
                for method in saliency.preview_methods():
                    if (mode, method) not in maps:
                        continue
                    png = mid_slices_png(
                        stored.bmode,
                        overlay=maps[(mode, method)],
                        overlay_kind="heat",
                        spacing=stored.spacing,
                        title=f"{scan.scan_id} · {mode} · {method}",
                    )
                    metadata[f"overlay_{mode}_{method}"] = dg.MetadataValue.md(
                        png_to_markdown(png, f"{scan.scan_id} {mode} {method}")
                    )
        metadata["path"] = dg.MetadataValue.path(str(out_dir))
        context.add_asset_metadata(metadata, partition_key=scan.scan_id)
        if (position + 1) % 10 == 0:
            context.log.info(
                f"saliency: {position + 1}/{len(todo)} scans"
                f" in {time.perf_counter() - started:.0f} s"
            )
    return _Batch(rows, diagnostics, failed, seconds, time.perf_counter() - started)


@stage_asset(
    "saliency",
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
    and a scan whose segmentation failed QC contributes no rows. Re-materializing replaces the
    batch's rows for each champion version in one transaction (older versions' rows stay).
    Maps are saved as ``$LAYER_ARTIFACTS_DIR/saliency/<scan_id>/<mode>_<method>.nii.gz`` on
    the B-mode's grid.
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
    for scan_id in [*unsegmented, *qc_failed]:
        remove_tree(paths.artifacts / "saliency" / scan_id)
    if qc_failed or unsegmented:
        context.log.warning(
            f"skipped {len(qc_failed)} scans failing segmentation QC and {len(unsegmented)}"
            f" without a segmentation: {', '.join([*qc_failed, *unsegmented][:20])}"
        )
    todo = scans[scans["qc_passed"].astype(bool)]
    with saliency.threads():
        batch = _attribute_batch(context, todo, models, tables, saliency, paths)
    rows, diagnostics, failed = batch.rows, batch.diagnostics, batch.failed
    writes = []  # one transaction: a crash leaves every mode's rows of the batch, or none
    for mode, (_, version, _) in models.items():
        scope = {"input_mode": mode, "model_version": version}
        for table, found in (("layer_saliency", rows), ("attribution_diagnostics", diagnostics)):
            mine = [r for r in found if r["input_mode"] == mode]
            writes.append(Replacement(table, mine, key="scan_id", keys=keys, scope=scope))
    warehouse.replace_all(writes)
    landed = (
        warehouse.query(
            "SELECT * FROM layer_saliency WHERE scan_id IN (SELECT unnest(?))"
            " AND model_version IN (SELECT unnest(?)) ORDER BY ALL",
            [keys, sorted({version for _, version, _ in models.values()})],
        )
        if rows
        else pd.DataFrame()
    )
    per_mode = {mode: round(float(np.mean(s)), 2) for mode, s in batch.seconds.items() if s}
    return dg.MaterializeResult(
        metadata={
            "n_scans": len(todo) - len(failed),
            "n_rows": len(rows),
            "models": dg.MetadataValue.json({m: f"v{v[1]}" for m, v in models.items()}),
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
            "seconds_total": round(batch.total_seconds, 1),
            "skipped_qc_failed": dg.MetadataValue.json(qc_failed[:50]),
            "skipped_unsegmented": dg.MetadataValue.json(unsegmented[:50]),
            "failed_scans": dg.MetadataValue.json(failed[:50]),
        },
        check_results=[
            *_saliency_checks(
                rows,
                diagnostics,
                [*qc_failed, *unsegmented, *failed],
                saliency.completeness_tolerance,
            ),
            gx_check_result(GX_CHECK, validate_layer_saliency(landed) if rows else []),
        ],
    )
