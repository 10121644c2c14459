"""Sum a voxel attribution map inside the six tissue layers of its scan: the LAYER profile.

All quantities use ``|attribution|`` (evidence for and against MP both count as "the model
looks here") and only tissue voxels (labels 1..6); background never enters a denominator.
Where the map covers voxels without a measurement (SWE outside its box: ``measured``), those
voxels enter no numerator and no denominator either, so a layer's figures describe only what
the model was shown; ``swe_coverage`` says how much of each layer that is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from layer_platform.attribution.core import AttributionResult, check_label_map
from layer_platform.errors import ScanError
from layer_platform.labels import MAX_LABEL, TISSUE_LAYERS, Layer

#: Percentile of tissue ``|attribution|`` that maps to 1. A percentile, not the max, so a single
#: hot voxel (common with gradients) cannot squash every other voxel toward 0.
NORMALISATION_PERCENTILE: float = 99.5


class NonFiniteMap(ValueError):
    """An attribution map with NaN or infinite values (a model's gradient overflowed, say):
    no layer can be summed from it, and the saliency stage quarantines the scan under its
    ``finite_values`` check."""


@dataclass(frozen=True)
class LayerRow:
    """One layer's share of one scan's attribution.

    Args:
        layer: layer key, e.g. ``"deep_fascia"``.
        layer_index: the label value (1 dermis .. 6 muscle).
        n_voxels: voxels of the layer in the scan.
        volume_fraction: ``n_voxels`` / tissue voxels.
        mean_saliency: mean over the layer's voxels of ``|attribution|`` scaled to [0, 1] per
            scan (divided by the tissue percentile, clipped at 1); NaN when the layer is absent.
        saliency_share: the layer's fraction of tissue ``sum |attribution|``; the six sum to 1
            (NaN for all when the map is zero in tissue).
        enrichment: ``saliency_share / volume_fraction``: 1 means "as much as its size predicts",
            so thin fasciae are not penalised for being thin. NaN when the layer is absent
            (0 / 0: no evidence either way, rather than a misleading 0).
        ablation_delta: ``logit(original) - logit(layer ablated)`` for layer ablation, else None.
        swe_coverage: the fraction of the layer's voxels with an SWE measurement (0..1) when
            the input has SWE, else None; NaN when the layer is absent.
        mean_saliency_eroded, mean_saliency_dilated, ablation_delta_eroded,
            ablation_delta_dilated: the method's score with every layer eroded or dilated by
            one voxel (``attribution.boundary``, filled by ``scan_profile.profile_scan``);
            None where not computed (the other kind of method, layer Shapley).

    With a ``measured`` mask (see ``aggregate_layers``), ``mean_saliency``, ``saliency_share``
    and ``enrichment`` count the layer's measured voxels only, and ``enrichment`` divides by the
    layer's fraction of *measured* tissue; a present layer without a measured voxel has NaN for
    all three (no evidence either way). ``n_voxels`` and ``volume_fraction`` stay anatomy.
    """

    layer: str
    layer_index: int
    n_voxels: int
    volume_fraction: float
    mean_saliency: float
    saliency_share: float
    enrichment: float
    ablation_delta: float | None
    swe_coverage: float | None = None
    mean_saliency_eroded: float | None = None
    mean_saliency_dilated: float | None = None
    ablation_delta_eroded: float | None = None
    ablation_delta_dilated: float | None = None


def measured_channels(x: np.ndarray, no_signal_channels: Sequence[int]) -> np.ndarray:
    """Boolean ``(C, L, D, S)`` of one input ``x``: where each channel was measured (in a
    no-signal channel, encoded SWE, exactly 0 means "not measured")."""
    measured = np.ones(x.shape, dtype=bool)
    for c in no_signal_channels:
        measured[c] = x[c] != 0
    return measured


def counted_map(result: AttributionResult, measured: np.ndarray) -> np.ndarray:
    """The map that is aggregated: ``sum_c |a_c|`` over measured channels when the method gives
    per-channel maps and C > 1, else its map; 0 where no channel was measured."""
    channels = result.extras.get("channel_maps")
    if channels is not None and channels.shape[0] > 1:
        return np.where(measured, np.abs(channels), 0.0).sum(axis=0).astype(np.float32)
    return np.where(measured.any(axis=0), result.map, 0.0).astype(np.float32)


def aggregate_layers(
    attribution: np.ndarray,
    labels: np.ndarray,
    *,
    ablation_deltas: Mapping[str, float] | None = None,
    measured: np.ndarray | None = None,
    swe_measured: np.ndarray | None = None,
    percentile: float = NORMALISATION_PERCENTILE,
) -> list[LayerRow]:
    """One row per tissue layer, skin to depth, from a map ``(L, D, S)`` and its label map.

    ``ablation_deltas`` (layer key to delta, as in ``layer_ablation``'s ``extras``) fills the
    ``ablation_delta`` column. ``measured`` (boolean ``(L, D, S)``, None: every voxel) is where
    the map's input was measured: only those voxels enter the aggregates and the normalisation
    scale. ``swe_measured`` (None: no SWE in the input) is where SWE was measured, for
    ``swe_coverage``. If fewer than ``100 - percentile`` % of the counted tissue voxels are
    non-zero the percentile is 0 and the maximum is used as the scale instead.
    """
    magnitude = np.abs(np.asarray(attribution, dtype=np.float64))
    labels = check_label_map(labels, magnitude.shape)
    if not np.isfinite(magnitude).all():
        raise NonFiniteMap("attribution map contains NaN or infinite values")
    tissue = labels > Layer.BACKGROUND
    n_tissue = int(tissue.sum())
    if n_tissue == 0:
        raise ScanError("label map has no tissue voxels (labels 1..6)")
    counted = tissue if measured is None else tissue & _mask(measured, labels.shape, "measured")

    values = magnitude[counted]
    normalised = normalise(values, percentile)
    total = float(values.sum())
    n_counted_tissue = values.size

    counted_labels = labels[counted]
    n_voxels = _per_label(labels)
    n_counted = _per_label(counted_labels)
    layer_sums = _per_label(counted_labels, values)
    normalised_sums = _per_label(counted_labels, normalised)
    n_swe = None
    if swe_measured is not None:
        n_swe = _per_label(labels[_mask(swe_measured, labels.shape, "swe_measured")])

    nan = float("nan")
    rows = []
    for layer in TISSUE_LAYERS:
        n, m = int(n_voxels[layer]), int(n_counted[layer])
        # An absent layer holds none of the map (share 0); a present one measured nowhere: NaN.
        share = float(layer_sums[layer] / total) if total > 0 and (m or not n) else nan
        coverage = None if n_swe is None else (float(n_swe[layer] / n) if n else nan)
        rows.append(
            LayerRow(
                layer=layer.key,
                layer_index=int(layer),
                n_voxels=n,
                volume_fraction=n / n_tissue,
                mean_saliency=float(normalised_sums[layer] / m) if m else nan,
                saliency_share=share,
                enrichment=share / (m / n_counted_tissue) if m else nan,
                ablation_delta=(
                    None if ablation_deltas is None else float(ablation_deltas.get(layer.key, nan))
                ),
                swe_coverage=coverage,
            )
        )
    return rows


def normalise(values: np.ndarray, percentile: float = NORMALISATION_PERCENTILE) -> np.ndarray:
    """The counted tissue's ``|attribution|`` ``values`` on the ``mean_saliency`` scale: divided
    by their ``percentile`` (their maximum when that is 0) and clipped to [0, 1]; all 0 when
    every value is 0 or there is none (nothing in tissue measured: every aggregate is NaN)."""
    scale = 0.0
    if values.size:
        scale = float(np.percentile(values, percentile)) or float(values.max())
    return np.clip(values / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(values)


def _per_label(labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Count (or sum ``weights``) per label value 0..6."""
    return np.bincount(labels.ravel(), weights=weights, minlength=MAX_LABEL + 1)


def _mask(mask: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != shape:
        raise ValueError(
            f"{name} must be a boolean mask shaped {shape}; got {mask.dtype} {mask.shape}"
        )
    return mask
