"""One scan's layer profile for every requested method: the per-scan half of the LAYER table.

``profile_scan`` runs each method on one scan ``(1, C, L, D, S)`` and returns, per method, the
voxel map that was aggregated, its six ``LayerRow`` s and diagnostics. Conventions:

* **Default method: layer ablation** (``DEFAULT_METHOD``). The question is "which layer
  drives the MP prediction?", and ablation answers it directly: the change in the MP logit when
  one layer at a time looks like a control's (the ``"cohort"`` fill). It is not confounded by
  layer geometry, which voxel maps are: their per-voxel ``mean_saliency`` favours thin
  membranes next to the edges a CNN looks at, and a max-pooling classifier's sparse gradients
  leave most of a diffuse driver's voxels near 0. On the calibration cohorts (simulated seeds
  7, 21, 22, 23: B-mode drivers deep fascia, deep fat, superficial fat, muscle; SWE muscle,
  deep fascia) ablation ranked all six planted layers first, Integrated Gradients five (the
  B-mode muscle driver 4th). Its limits: one layer at a time (no interactions), and the
  answer is relative to the fill. **Integrated Gradients** stays the voxel-level map: it is
  *complete* (the map adds up to ``f(x) - f(baseline)``, which ``completeness_error`` audits
  per scan), has no resolution limit (Grad-CAM is 8x coarser than the grid, occlusion as
  coarse as its window) and none of the saturation blindness of plain gradients; its
  ``mean_saliency`` is the paper's kind of figure.
* **Channels.** A multi-channel input (``bmode_swe``) is aggregated on
  ``sum_c |attribution_c|``: evidence in either modality counts, and a voxel where B-mode argues
  for MP and SWE against is not cancelled to 0. Integrated Gradients therefore keeps its
  per-channel maps (``integrated_gradients_by_channel``), as saliency does (``|gradient|`` per
  channel); occlusion and layer ablation perturb all channels of a voxel together (layer
  ablation also reports each channel of each layer alone, ``MethodProfile.channel_deltas``,
  which names the modality); Grad-CAM has no channel axis.
* **Measured voxels only.** In ``no_signal_channels`` (encoded SWE) exactly 0 means "not
  measured". A channel's map counts only where that channel was measured, and a voxel counts
  in the layer aggregates (numerator, denominator and normalisation scale) when any channel
  that enters its map was measured. Per method: Integrated Gradients and saliency drop the SWE
  channel's map on unmeasured voxels before the channel sum (in ``bmode_swe`` such a voxel
  still counts, with its B-mode evidence; in ``swe`` it is left out); Grad-CAM and occlusion
  give one map over all channels, so in ``bmode_swe`` (B-mode is always measured) nothing
  changes and in ``swe`` unmeasured voxels are left out; layer ablation and layer Shapley give
  one number per layer, with no voxel aggregate to restrict. Every SWE row carries the layer's
  ``swe_coverage`` (also for the layer-value methods: how much of the layer an ablation
  changed).
* **The returned map.** ``voxel_map`` is exactly what was aggregated (signed where the method
  is signed and the input has one channel; 0 on voxels that do not count), so
  ``aggregate_layers(voxel_map, labels, measured=...)`` with the counted voxels reproduces the
  rows.
* **Boundary sensitivity.** Each row also carries the method's score with every layer eroded
  and dilated by one voxel (``attribution.boundary``): map methods re-aggregate the same map
  (``mean_saliency_eroded``, ``mean_saliency_dilated``), layer ablation ablates the perturbed
  masks in its extra passes (``ablation_delta_eroded``, ``ablation_delta_dilated``); layer
  Shapley leaves them None (64 coalitions twice more is not worth a caveat).
* **Layer ablation** (and **layer Shapley**, ``shapley``) gives one number per layer,
  ``ablation_delta``; its ``mean_saliency``,
  ``saliency_share`` and ``enrichment`` are NaN (NULL in DuckDB), because painting a layer's
  delta over its voxels would weight it by volume and the columns would mean something else.
* **Cohort baseline.** ``control_layer_means`` and ``cohort_fill_volume`` build the
  ``"cohort"`` reference: each tissue layer filled with the control class's mean for that layer
  and channel ("what if this layer looked like a control's?"), so a driver that shifts a
  layer's brightness or stiffness is credited, which a ``layer_mean`` reference (the scan's own
  layer means) would hide.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from torch import Tensor, nn

from layer_platform.attribution.aggregation import (
    LayerRow,
    aggregate_layers,
    counted_map,
    measured_channels,
)
from layer_platform.attribution.baselines import resolve_baseline
from layer_platform.attribution.boundary import boundary_masks, boundary_scores
from layer_platform.attribution.core import (
    AttributionConfig,
    AttributionResult,
    LogitFn,
    check_label_map,
    to_numpy,
)
from layer_platform.attribution.integrated_gradients import integrate
from layer_platform.attribution.registry import METHODS, USES_REFERENCE, attribute
from layer_platform.attribution.sanity import completeness_error
from layer_platform.labels import MAX_LABEL, TISSUE_LAYERS
from layer_platform.saliency_names import (
    BOUNDARIES,
    CHANNEL_DELTA_COLUMNS,
    LAYER_VALUE_METHODS,
    PLATFORM_METHODS,
    channel_column,
)


@dataclass(frozen=True, eq=False)
class MethodProfile:
    """One method's result on one scan.

    Args:
        method: registry name.
        voxel_map: float32 ``(L, D, S)``: the map whose ``|value|`` was aggregated (per-voxel
            layer delta for layer ablation).
        rows: the six layers, skin to depth.
        diagnostics: numbers worth keeping per scan: ``seconds`` always; for Integrated
            Gradients ``logit``, ``baseline_logit``, ``convergence_delta`` (captum's, on the
            per-channel attributions) and ``completeness_error`` (relative to
            ``|f(x) - f(baseline)|``, see ``sanity.completeness_error``); for layer ablation
            and layer Shapley the joint ablations ``joint_non_muscle_delta`` and
            ``joint_muscle_delta``.
        channel_deltas: layer ablation of a multi-channel input only: per channel, layer key to
            the delta with only that channel of the layer replaced (empty otherwise).
        channel_boundary_deltas: the same per boundary perturbation (``BOUNDARIES``) of every
            layer (empty where ``channel_deltas`` is).
    """

    method: str
    voxel_map: np.ndarray
    rows: tuple[LayerRow, ...]
    diagnostics: dict[str, float]
    channel_deltas: tuple[dict[str, float], ...] = ()
    channel_boundary_deltas: Mapping[str, tuple[dict[str, float], ...]] = field(
        default_factory=dict
    )

    def modality_deltas(self, modalities: Sequence[str], layer: str) -> dict[str, float | None]:
        """A row's ``CHANNEL_DELTA_COLUMNS`` and their boundary columns for the input's
        channels ``modalities``: the layer's delta with one modality's channel replaced, as
        segmented and with every layer eroded or dilated by one voxel; None where the method
        reported none (only layer ablation of two channels does)."""
        sources = {None: self.channel_deltas, **self.channel_boundary_deltas}
        found = {}
        for boundary in (None, *BOUNDARIES):
            by_modality = dict(zip(modalities, sources.get(boundary, ()), strict=False))
            for modality in CHANNEL_DELTA_COLUMNS:
                deltas = by_modality.get(modality)
                column = channel_column(modality, boundary)
                found[column] = None if deltas is None else deltas[layer]
        return found


def integrated_gradients_by_channel(
    forward: LogitFn,
    inputs: Tensor,
    *,
    baseline: Tensor | None,
    layers_map: np.ndarray | None,
    target_layer: nn.Module | None,
    config: AttributionConfig,
) -> AttributionResult:
    """Integrated Gradients as in ``integrated_gradients``, keeping the per-channel maps.

    ``map`` is the signed channel sum (complete: it adds up to ``f(x) - f(baseline)``);
    ``extras["channel_maps"]`` is ``(C, L, D, S)`` for ``sum_c |attribution_c|``.
    """
    reference = resolve_baseline(baseline, inputs, layers_map, config)
    attributions, diagnostics = integrate(forward, inputs, reference, config)
    channels = to_numpy(attributions[0])
    return AttributionResult(
        method="integrated_gradients",
        map=channels.sum(axis=0),
        extras={"channel_maps": channels, **diagnostics},
    )


#: Per-scan joint ablations (all non-muscle layers at once; muscle) of the layer-value methods.
_JOINT_DIAGNOSTICS = ("joint_non_muscle_delta", "joint_muscle_delta")
#: Per-scan numbers ``layer_shapley`` reports (efficiency audit, joint ablations).
_SHAPLEY_DIAGNOSTICS = ("logit", "baseline_logit", "efficiency_error", *_JOINT_DIAGNOSTICS)


def _diagnostics(result: AttributionResult) -> dict[str, float]:
    if result.method == "layer_shapley":
        return {k: result.extras[k] for k in _SHAPLEY_DIAGNOSTICS if k in result.extras}
    if result.method == "layer_ablation":
        return {k: result.extras[k] for k in _JOINT_DIAGNOSTICS if k in result.extras}
    if result.method != "integrated_gradients":
        return {}
    return {
        "logit": result.extras["logit"],
        "baseline_logit": result.extras["baseline_logit"],
        "convergence_delta": result.extras["convergence_delta"],
        "completeness_error": completeness_error(result),
    }


def profile_scan(
    model: nn.Module,
    inputs: Tensor,
    labels: np.ndarray,
    methods: Sequence[str] = PLATFORM_METHODS,
    config: AttributionConfig | None = None,
    *,
    target_layer: nn.Module | None = None,
    no_signal_channels: Sequence[int] = (),
) -> dict[str, MethodProfile]:
    """Run ``methods`` on one scan and aggregate each map inside its six layers.

    Args:
        model: classifier returning one MP logit per sample.
        inputs: one scan ``(1, C, L, D, S)`` on the model's device.
        labels: the scan's six-layer label map ``(L, D, S)`` (0 background, 1..6 tissue).
        methods: registry names; ``integrated_gradients`` runs with per-channel maps.
        config: attribution settings (baseline, steps, windows); defaults if None.
        target_layer: the Grad-CAM layer (the classifier's last conv block).
        no_signal_channels: channels where exactly 0 means "not measured" (encoded SWE,
            ``classification.modes.no_signal_channels``); they restrict the aggregates to
            measured voxels and fill ``swe_coverage``.

    Raises:
        ValueError: an unknown method name.
        ScanError: a label map that does not fit the scan or has no tissue.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown attribution method(s) {unknown}; expected of {list(METHODS)}")
    labels = check_label_map(labels, tuple(inputs.shape[2:]))
    config = config or AttributionConfig()
    measured = measured_channels(to_numpy(inputs[0]), no_signal_channels)
    counted = measured.any(axis=0)
    swe_measured = measured[list(no_signal_channels)].any(axis=0) if no_signal_channels else None
    masks = {boundary: boundary_masks(labels, boundary) for boundary in BOUNDARIES}
    # One reference for every method that takes one: the same volume, built once per scan.
    reference = (
        resolve_baseline(None, inputs, labels, config)
        if USES_REFERENCE.intersection(methods)
        else None
    )
    profiles: dict[str, MethodProfile] = {}
    for method in methods:
        started = time.perf_counter()
        result = attribute(
            integrated_gradients_by_channel if method == "integrated_gradients" else method,
            model,
            inputs,
            baseline=reference,
            layers_map=labels,
            target_layer=target_layer,
            config=config,
        )
        voxel_map = counted_map(result, measured)
        deltas = result.extras.get("layer_deltas")
        rows = aggregate_layers(
            voxel_map, labels, ablation_deltas=deltas, measured=counted, swe_measured=swe_measured
        )
        if method in LAYER_VALUE_METHODS:
            nan = float("nan")
            rows = [replace(r, mean_saliency=nan, saliency_share=nan, enrichment=nan) for r in rows]
        perturbed = boundary_scores(
            method,
            voxel_map,
            labels,
            masks,
            counted=counted,
            ablated=result.extras.get("boundary_deltas"),
        )
        rows = [replace(r, **{c: v[r.layer] for c, v in perturbed.items()}) for r in rows]
        diagnostics = _diagnostics(result)
        diagnostics["seconds"] = time.perf_counter() - started
        profiles[method] = MethodProfile(
            method,
            voxel_map,
            tuple(rows),
            diagnostics,
            tuple(result.extras.get("channel_deltas", ())),
            dict(result.extras.get("channel_boundary_deltas", {})),
        )
    return profiles


def control_layer_means(
    examples: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    no_signal_channels: Sequence[int] = (),
) -> np.ndarray:
    """Per tissue layer and channel, the mean input value over control scans: ``(6, C)``.

    ``examples`` are ``(x (C, L, D, S), labels (L, D, S))`` pairs. In ``no_signal_channels``
    (encoded SWE) a value of exactly 0 means "no measurement" and is left out of the mean. A
    layer absent from every control is NaN (``cohort_fill_volume`` then keeps the scan's own
    values there).

    Raises:
        ValueError: no examples, or examples with different channel counts.
    """
    sums: np.ndarray | None = None
    counts: np.ndarray | None = None
    for x, labels in examples:
        labels = check_label_map(labels, tuple(x.shape[1:]))
        if sums is None:
            sums = np.zeros((MAX_LABEL + 1, x.shape[0]))
            counts = np.zeros_like(sums)
        if x.shape[0] != sums.shape[1]:
            raise ValueError(f"examples mix {sums.shape[1]} and {x.shape[0]} channels")
        for c, channel in enumerate(np.asarray(x, dtype=np.float64)):
            measured = channel != 0 if c in no_signal_channels else np.ones(channel.shape, bool)
            flat = labels[measured]
            sums[:, c] += np.bincount(flat, weights=channel[measured], minlength=MAX_LABEL + 1)
            counts[:, c] += np.bincount(flat, minlength=MAX_LABEL + 1)
    if sums is None or counts is None:
        raise ValueError("control_layer_means needs at least one control scan")
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    return means[[int(layer) for layer in TISSUE_LAYERS]]


#: How ``cohort_fill_volume`` puts the reference into a layer: ``flat`` fills it with the
#: reference's mean (no texture left); ``mean_shift`` keeps the scan's own texture (speckle,
#: fibres) and moves its mean to the reference's, so the ablated scan stays closer to scans the
#: model has seen.
REFERENCE_MATCHINGS = ("flat", "mean_shift")


def cohort_fill_volume(
    table: np.ndarray,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    no_signal_channels: Sequence[int] = (),
    matching: str = "flat",
) -> np.ndarray:
    """The ``"cohort"`` reference of one scan as a ``(C, L, D, S)`` volume.

    Tissue voxels take ``table`` (``(6, C)``, from ``control_layer_means``) as ``matching``
    says (``REFERENCE_MATCHINGS``); background, layers the table lacks (NaN) and, in
    ``no_signal_channels``, voxels without a measurement (exactly 0) keep the scan's own values,
    so the reference never invents stiffness where none was measured. In those channels a
    mean-shifted measured voxel is floored at 0 (the encoding's 0 kPa). Pass the volume as
    ``AttributionConfig(baseline="cohort", cohort_fill=...)``.
    """
    if matching not in REFERENCE_MATCHINGS:
        raise ValueError(f"matching must be one of {REFERENCE_MATCHINGS}; got {matching!r}")
    x = np.asarray(x, dtype=np.float32)
    labels = check_label_map(labels, tuple(x.shape[1:]))
    table = np.asarray(table, dtype=np.float64)
    if table.shape != (len(TISSUE_LAYERS), x.shape[0]):
        raise ValueError(f"table must be (6, {x.shape[0]}); got {table.shape}")
    full = np.vstack([np.full((1, x.shape[0]), np.nan), table])  # row 0: background
    fill = np.moveaxis(full[labels], -1, 0).astype(np.float32)  # (C, L, D, S)
    keep = ~np.isfinite(fill)
    for c in no_signal_channels:
        keep[c] |= x[c] == 0
    if matching == "mean_shift":
        for c in range(x.shape[0]):
            for layer in TISSUE_LAYERS:
                voxels = (labels == layer) & ~keep[c]
                if voxels.any():
                    own = x[c][voxels]
                    shifted = own - own.mean(dtype=np.float64) + table[layer - 1, c]
                    if c in no_signal_channels:
                        shifted = np.maximum(shifted, 0.0)
                    fill[c][voxels] = shifted
    return np.where(keep, x, fill)
