"""One scan of the saliency batch: every champion's maps and layer rows, ready to commit.

The scan's maps are staged in a hidden folder and swapped in whole with its rows (see
``layer_platform.batching``); incomplete or non-finite rows refuse the scan (quarantine),
an Integrated Gradients completeness error above the tolerance only warns.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from layer_platform.attribution.aggregation import NonFiniteMap
from layer_platform.attribution.cohort_reference import FrozenReference
from layer_platform.attribution.core import AttributionConfig
from layer_platform.attribution.explainer import Explainer, choose_explainer
from layer_platform.attribution.registry import METHODS
from layer_platform.attribution.scan_profile import (
    MethodProfile,
    cohort_fill_volume,
    profile_scan,
)
from layer_platform.batching import ScanCheckFailed, ScanResult, publish_folder
from layer_platform.classification.modes import (
    INPUT_MODES,
    channel_modalities,
    mode_input,
    no_signal_channels,
)
from layer_platform.classification.splits import SplitScheme
from layer_platform.imaging.figures import mid_slices_png, png_to_markdown
from layer_platform.imaging.native import write_saliency_maps
from layer_platform.imaging.preprocess import PreprocessedScan, load_preprocessed
from layer_platform.io import read_label_map
from layer_platform.labels import Layer
from layer_platform.locations import Location
from layer_platform.saliency_names import (
    BOUNDARY_COLUMNS,
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
    """The scan's attribution settings: its own cohort reference volume when configured (the
    reference table put into the scan's layers as the config's ``cohort_matching`` says)."""
    if baseline != "cohort":
        return make_config()
    if table is None:
        return make_config(baseline="layer_mean")
    config = make_config()
    fill = cohort_fill_volume(
        table,
        x,
        labels,
        no_signal_channels=no_signal_channels(mode),
        matching=config.cohort_matching,
    )
    return replace(config, cohort_fill=fill)


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
    #: ``SaliencyResource.attribution_settings()``, stored on every row: rows computed under
    #: other settings are stale and get recomputed.
    attribution_settings: str


@dataclass(frozen=True)
class ScanToAttribute:
    scan_id: str
    subject_id: str
    label: str | None
    segmentation_source: str
    path: str


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
        columns = (
            *LAYER_VALUE_COLUMNS,
            *CHANNEL_DELTA_COLUMNS.values(),
            JOINT_ABLATION_COLUMN,
            *BOUNDARY_COLUMNS,
        )
        values = [row[c] for c in columns if row.get(c) is not None]
        if row["volume_fraction"] is None or np.isnan(row["volume_fraction"]):
            return "finite_values"
        if np.isinf(np.asarray(values, dtype=float)).any():
            return "finite_values"
    return None


def _carry_over(previous: Path, folder: Path, dropped: Collection[str]) -> None:
    """Link the scan's published maps into ``folder``, except the file names ``dropped``
    (working grid and ``native/`` alike): what a mode's commit keeps of the other modes."""
    if not previous.is_dir():
        return
    for source in previous.rglob("*"):
        if source.is_dir() or source.name in dropped:
            continue
        target = folder / source.relative_to(previous)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:  # another file system, or no hard links: copy
            shutil.copy2(source, target)


def mode_files(modes: Iterable[str]) -> set[str]:
    """The map file names (``<mode>_<method>.nii.gz``) any method could have left for ``modes``."""
    return {f"{mode}_{method}.nii.gz" for mode in modes for method in METHODS}


def attribute_batch_scan(
    scan: ScanToAttribute,
    champions: Mapping[str, Champion],
    references: Mapping[str, FrozenReference | None],
    settings: SaliencySettings,
    artifacts: Path,
    device: torch.device,
    *,
    preview: bool,
    current: Collection[str] = (),
) -> Iterator[ScanResult]:
    """Attribute one scan with every mode's champion, or the member of it that never trained on
    the scan (``attribution.explainer``), one committed part per mode.

    Each part replaces the scan's rows of that champion version and swaps in the scan's map
    folder (``saliency/<scan_id>/<mode>_<method>.nii.gz``) with the mode's maps new and the
    other modes' kept, so an interrupted scan keeps its finished modes. Modes in ``current``
    (rows already up to date) are kept as they are; a mode with no input or no out-of-sample
    explainer loses its rows and maps (a first part, before any attribution).
    """
    stored = load_preprocessed(artifacts / "preprocessed" / scan.scan_id)
    labels = read_label_map(scan.path)
    out_dir = artifacts / "saliency" / scan.scan_id
    plan: dict[str, tuple[np.ndarray, Explainer]] = {}
    for mode, champ in champions.items():
        x = mode_input(mode, stored)
        explainer = choose_explainer(champ.model, champ.scheme, scan.subject_id, scan.label)
        if x is not None and explainer is not None:  # else no SWE, or no out-of-sample model
            plan[mode] = (x, explainer)
    stale = [mode for mode in champions if mode not in plan and mode not in current]
    gone = mode_files(m for m in INPUT_MODES if m not in plan and m not in current)
    if stale or any((out_dir / name).exists() for name in gone):
        yield ScanResult(  # no rows or maps for modes it no longer has (no SWE, no explainer)
            writes=[
                _rows_write(t, scan.scan_id, m, champions[m].version, [])
                for m in stale
                for t in _TABLES
            ],
            publish=_publisher(out_dir, {}, stored, gone),
            metadata={"path": str(out_dir)},
        )
    for mode in (m for m in plan if m not in current):
        x, explainer = plan[mode]
        part = _attribute_mode(
            scan, mode, champions[mode], x, explainer, labels, references, settings, device
        )
        markdown = {}
        if preview:
            markdown = {
                f"overlay_{mode}_{method}": _overlay(scan.scan_id, stored, mode, method, voxels)
                for method, voxels in part.maps.items()
                if method in settings.preview_methods
            }
        named = {f"{mode}_{method}": voxels for method, voxels in part.maps.items()}
        yield ScanResult(
            writes=part.writes,
            publish=_publisher(out_dir, named, stored, mode_files([mode])),
            metadata={**part.metadata, "path": str(out_dir)},
            markdown=markdown,
            warnings=part.warnings,
            seconds={mode: part.seconds},
        )


_TABLES = ("layer_saliency", "attribution_diagnostics")


def _rows_write(table: str, scan_id: str, mode: str, version: str, rows: list[dict]) -> Replacement:
    """Replace the scan's ``table`` rows of ``mode``'s champion ``version`` with ``rows``."""
    scope = {"input_mode": mode, "model_version": version}
    return Replacement(table, rows, key="scan_id", keys=[scan_id], scope=scope)


def _publisher(
    out_dir: Path, named: Mapping[str, np.ndarray], stored: PreprocessedScan, dropped: set[str]
) -> Callable[[], None]:
    """Swap in the scan's map folder: ``named`` maps written (working grid and ``native/``,
    ``imaging.native``), the published files kept except ``dropped``."""

    def write(folder: Location) -> None:
        if folder != out_dir:  # a staging folder (object storage writes in place)
            _carry_over(Path(out_dir), Path(folder), dropped)
        write_saliency_maps(folder, named, stored)

    return lambda: publish_folder(out_dir, write)


def _overlay(
    scan_id: str, stored: PreprocessedScan, mode: str, method: str, voxels: np.ndarray
) -> str:
    png = mid_slices_png(
        stored.bmode,
        overlay=voxels,
        overlay_kind="heat",
        spacing=stored.spacing,
        title=f"{scan_id} · {mode} · {method}",
    )
    return png_to_markdown(png, f"{scan_id} {mode} {method}")


@dataclass
class _ModeResult:
    """One mode's maps (method → voxels), rows to write, metadata, warnings and seconds."""

    maps: dict[str, np.ndarray]
    writes: list[Replacement]
    metadata: dict[str, str]
    warnings: list[str]
    seconds: float


def _attribute_mode(
    scan: ScanToAttribute,
    mode: str,
    champ: Champion,
    x: np.ndarray,
    explainer: Explainer,
    labels: np.ndarray,
    references: Mapping[str, FrozenReference | None],
    settings: SaliencySettings,
    device: torch.device,
) -> _ModeResult:
    """Every configured method's map and layer rows for one mode; refuses the scan
    (``ScanCheckFailed``) when a map or the rows are not finite, or the rows incomplete."""
    now = utc_now()
    tic = time.perf_counter()
    reference = references.get(mode)
    table = None if reference is None else reference.table_for(explainer.member)
    config = scan_config(settings.make_config, settings.baseline, table, mode, x, labels)
    reference_sha256 = (
        reference.sha256 if settings.baseline == "cohort" and table is not None else None
    )
    try:
        profiles = profile_scan(
            explainer.model,
            torch.as_tensor(x[None], device=device),
            labels,
            settings.methods,
            config,
            target_layer=explainer.target_layer,
            no_signal_channels=no_signal_channels(mode),
        )
    except NonFiniteMap:
        raise ScanCheckFailed("finite_values") from None
    seconds = time.perf_counter() - tic
    ids = {"scan_id": scan.scan_id, "input_mode": mode, "model_version": champ.version}
    rows: list[dict] = []
    diagnostics: list[dict] = []
    warnings: list[str] = []
    for method, profile in profiles.items():
        rows += [
            {
                **ids,
                "subject_id": scan.subject_id,
                "label": scan.label,
                "method": method,
                "model_name": champ.name,
                "explained_by": explainer.explained_by,
                "reference_sha256": reference_sha256,
                "attribution_settings": settings.attribution_settings,
                **asdict(row),
                **profile.modality_deltas(channel_modalities(mode), row.layer),
                **joint_delta(profile, row.layer),
                "segmentation_source": scan.segmentation_source,
                "computed_at": now,
            }
            for row in profile.rows
        ]
        diagnostics += [
            {**ids, "method": method, "metric": k, "value": float(v), "computed_at": now}
            for k, v in profile.diagnostics.items()
        ]
        error = profile.diagnostics.get("completeness_error")
        if error is not None and float(error) > settings.completeness_tolerance:
            warnings.append("ig_completeness")
    problem = rows_problem(rows, n_maps=len(profiles))
    if problem is not None:
        raise ScanCheckFailed(problem)
    scores = {
        r.layer: getattr(r, settings.score_column) for r in profiles[settings.default_method].rows
    }
    finite = {k: v for k, v in scores.items() if v is not None and np.isfinite(v)}
    metadata = {f"{mode}_top_layer": max(finite, key=finite.__getitem__)} if finite else {}
    return _ModeResult(
        maps={method: profile.voxel_map for method, profile in profiles.items()},
        writes=[
            _rows_write(table, scan.scan_id, mode, champ.version, found)
            for table, found in zip(_TABLES, (rows, diagnostics), strict=True)
        ],
        metadata=metadata,
        warnings=sorted(set(warnings)),
        seconds=seconds,
    )
