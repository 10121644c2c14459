"""One scan of the saliency batch: every champion's maps and layer rows, ready to commit.

The scan's maps are staged in a hidden folder and swapped in whole with its rows (see
``layer_platform.batching``); incomplete or non-finite rows refuse the scan (quarantine),
an Integrated Gradients completeness error above the tolerance only warns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from layer_platform.attribution.cohort_reference import FrozenReference
from layer_platform.attribution.core import AttributionConfig
from layer_platform.attribution.explainer import choose_explainer
from layer_platform.attribution.scan_profile import (
    MethodProfile,
    cohort_fill_volume,
    profile_scan,
)
from layer_platform.batching import ScanCheckFailed, ScanResult, publish_folder
from layer_platform.classification.modes import (
    channel_modalities,
    mode_input,
    no_signal_channels,
)
from layer_platform.classification.splits import SplitScheme
from layer_platform.imaging.figures import mid_slices_png, png_to_markdown
from layer_platform.imaging.native import write_saliency_maps
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.io import read_label_map
from layer_platform.labels import Layer
from layer_platform.saliency_names import (
    CHANNEL_DELTA_COLUMNS,
    JOINT_ABLATION_COLUMN,
    LAYER_VALUE_COLUMNS,
)
from layer_platform.timestamps import utc_now
from layer_platform.warehouse.store import Replacement


def scan_config(
    make_config: Callable[..., AttributionConfig],
    baseline: str,
    table: np.ndarray | None,
    mode: str,
    x: np.ndarray,
    labels: np.ndarray,
) -> AttributionConfig:
    """The scan's attribution settings: its own cohort reference volume when configured."""
    if baseline != "cohort":
        return make_config()
    if table is None:
        return make_config(baseline="layer_mean")
    fill = cohort_fill_volume(table, x, labels, no_signal_channels=no_signal_channels(mode))
    return make_config(cohort_fill=fill)


@dataclass(frozen=True)
class Champion:
    """A mode's champion classifier in eval mode, its registered name and version, and the
    split it was trained under (None when its version records none)."""

    model: torch.nn.Module
    name: str
    version: str
    scheme: SplitScheme | None


@dataclass(frozen=True)
class SaliencySettings:
    """What the batch needs of the saliency resource (plain values, no Dagster)."""

    methods: Sequence[str]
    default_method: str
    score_column: str
    baseline: str
    make_config: Callable[..., AttributionConfig]
    preview_methods: Sequence[str]
    completeness_tolerance: float


@dataclass(frozen=True)
class ScanToAttribute:
    scan_id: str
    subject_id: str
    label: str | None
    segmentation_source: str
    path: str


def modality_deltas(mode: str, profile: MethodProfile, layer: str) -> dict[str, float | None]:
    """A row's ``CHANNEL_DELTA_COLUMNS``: the layer's delta with one modality's channel
    replaced, where the method reported per-channel deltas (layer ablation, two channels)."""
    found = dict(zip(channel_modalities(mode), profile.channel_deltas, strict=False))
    return {
        column: found[modality][layer] if modality in found else None
        for modality, column in CHANNEL_DELTA_COLUMNS.items()
    }


def joint_delta(profile: MethodProfile, layer: str) -> dict[str, float | None]:
    """A row's ``JOINT_ABLATION_COLUMN``: the drop when its side of the paper's comparison
    (muscle, or all non-muscle tissue) is replaced at once, where the method reported it."""
    side = "joint_muscle_delta" if layer == Layer.MUSCLE.key else "joint_non_muscle_delta"
    return {JOINT_ABLATION_COLUMN: profile.diagnostics.get(side)}


def rows_problem(rows: list[dict], n_maps: int) -> str | None:
    """The per-scan check ``rows`` fail: six rows per map, finite values; None if both hold."""
    per_map: dict[tuple[str, str], set] = {}
    for row in rows:
        per_map.setdefault((row["input_mode"], row["method"]), set()).add(row["layer"])
    if len(per_map) != n_maps or any(len(layers) != 6 for layers in per_map.values()):
        return "rows_complete"
    if len(rows) != 6 * n_maps:
        return "rows_complete"
    for row in rows:  # NaN is documented where a map is all zero; infinity never is
        columns = (*LAYER_VALUE_COLUMNS, *CHANNEL_DELTA_COLUMNS.values(), JOINT_ABLATION_COLUMN)
        values = [row[c] for c in columns if row.get(c) is not None]
        if row["volume_fraction"] is None or np.isnan(row["volume_fraction"]):
            return "finite_values"
        if np.isinf(np.asarray(values, dtype=float)).any():
            return "finite_values"
    return None


def attribute_batch_scan(
    scan: ScanToAttribute,
    champions: Mapping[str, Champion],
    references: Mapping[str, FrozenReference | None],
    settings: SaliencySettings,
    artifacts: Path,
    device: torch.device,
    *,
    preview: bool,
) -> ScanResult:
    """Attribute one scan with every mode's champion, or the member of it that never trained on
    the scan (``attribution.explainer``); rows replace the scan's earlier rows of each champion
    version, maps land as ``saliency/<scan_id>/<mode>_<method>.nii.gz``."""
    now = utc_now()
    stored = load_preprocessed(artifacts / "preprocessed" / scan.scan_id)
    labels = read_label_map(scan.path)
    rows: dict[str, list[dict]] = {}
    diagnostics: dict[str, list[dict]] = {}
    maps: dict[tuple[str, str], np.ndarray] = {}
    metadata: dict = {}
    seconds: dict[str, float] = {}
    warnings: list[str] = []
    for mode, champ in champions.items():
        rows[mode], diagnostics[mode] = [], []
        x = mode_input(mode, stored)
        explainer = choose_explainer(champ.model, champ.scheme, scan.subject_id, scan.label)
        if x is None or explainer is None:  # no SWE; or no model that never trained on it
            continue
        tic = time.perf_counter()
        reference = references.get(mode)
        table = None if reference is None else reference.table_for(explainer.fold)
        config = scan_config(settings.make_config, settings.baseline, table, mode, x, labels)
        reference_sha256 = (
            reference.sha256 if settings.baseline == "cohort" and table is not None else None
        )
        profiles = profile_scan(
            explainer.model,
            torch.as_tensor(x[None], device=device),
            labels,
            settings.methods,
            config,
            target_layer=explainer.target_layer,
            no_signal_channels=no_signal_channels(mode),
        )
        seconds[mode] = time.perf_counter() - tic
        ids = {"scan_id": scan.scan_id, "input_mode": mode, "model_version": champ.version}
        for method, profile in profiles.items():
            maps[(mode, method)] = profile.voxel_map
            rows[mode] += [
                {
                    **ids,
                    "subject_id": scan.subject_id,
                    "label": scan.label,
                    "method": method,
                    "model_name": champ.name,
                    "explained_by": explainer.explained_by,
                    "reference_sha256": reference_sha256,
                    **asdict(row),
                    **modality_deltas(mode, profile, row.layer),
                    **joint_delta(profile, row.layer),
                    "segmentation_source": scan.segmentation_source,
                    "computed_at": now,
                }
                for row in profile.rows
            ]
            diagnostics[mode] += [
                {**ids, "method": method, "metric": k, "value": float(v), "computed_at": now}
                for k, v in profile.diagnostics.items()
            ]
            error = profile.diagnostics.get("completeness_error")
            if error is not None and float(error) > settings.completeness_tolerance:
                warnings.append("ig_completeness")
        scores = {
            r.layer: getattr(r, settings.score_column)
            for r in profiles[settings.default_method].rows
        }
        finite = {k: v for k, v in scores.items() if v is not None and np.isfinite(v)}
        if finite:
            metadata[f"{mode}_top_layer"] = max(finite, key=finite.__getitem__)
    produced = [row for found in rows.values() for row in found]
    problem = rows_problem(produced, n_maps=len(maps))
    if problem is not None:
        raise ScanCheckFailed(problem)
    markdown = {}
    if preview:
        for (mode, method), voxel_map in maps.items():
            if method in settings.preview_methods:
                png = mid_slices_png(
                    stored.bmode,
                    overlay=voxel_map,
                    overlay_kind="heat",
                    spacing=stored.spacing,
                    title=f"{scan.scan_id} · {mode} · {method}",
                )
                label = f"{scan.scan_id} {mode} {method}"
                markdown[f"overlay_{mode}_{method}"] = png_to_markdown(png, label)
    out_dir = artifacts / "saliency" / scan.scan_id

    def publish() -> None:  # working grid + native/ (imaging.native), as one folder
        named = {f"{mode}_{method}": m for (mode, method), m in maps.items()}
        publish_folder(out_dir, lambda folder: write_saliency_maps(folder, named, stored))

    writes = []
    for mode, champ in champions.items():
        scope = {"input_mode": mode, "model_version": champ.version}
        for table, found in (("layer_saliency", rows), ("attribution_diagnostics", diagnostics)):
            writes.append(
                Replacement(table, found[mode], key="scan_id", keys=[scan.scan_id], scope=scope)
            )
    return ScanResult(
        writes=writes,
        publish=publish,
        metadata={**metadata, "path": str(out_dir)},
        markdown=markdown,
        warnings=sorted(set(warnings)),
        seconds=seconds,
    )
