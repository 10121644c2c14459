"""Sum a voxel attribution map inside the six tissue layers of its scan: the LAYER profile.

All quantities use ``|attribution|`` (evidence for and against MP both count as "the model
looks here") and only tissue voxels (labels 1..6); background never enters a denominator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from layer_platform.attribution.core import check_label_map
from layer_platform.errors import ScanError
from layer_platform.labels import MAX_LABEL, TISSUE_LAYERS, Layer

#: Percentile of tissue ``|attribution|`` that maps to 1. A percentile, not the max, so a single
#: hot voxel (common with gradients) cannot squash every other voxel toward 0.
NORMALISATION_PERCENTILE: float = 99.5


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
    """

    layer: str
    layer_index: int
    n_voxels: int
    volume_fraction: float
    mean_saliency: float
    saliency_share: float
    enrichment: float
    ablation_delta: float | None


def aggregate_layers(
    attribution: np.ndarray,
    labels: np.ndarray,
    *,
    ablation_deltas: Mapping[str, float] | None = None,
    percentile: float = NORMALISATION_PERCENTILE,
) -> list[LayerRow]:
    """One row per tissue layer, skin to depth, from a map ``(L, D, S)`` and its label map.

    ``ablation_deltas`` (layer key to delta, as in ``layer_ablation``'s ``extras``) fills the
    ``ablation_delta`` column. If fewer than ``100 - percentile`` % of tissue voxels are non-zero
    the percentile is 0 and the maximum is used as the scale instead.
    """
    magnitude = np.abs(np.asarray(attribution, dtype=np.float64))
    labels = check_label_map(labels, magnitude.shape)
    if not np.isfinite(magnitude).all():
        raise ValueError("attribution map contains NaN or infinite values")
    tissue = labels > Layer.BACKGROUND
    n_tissue = int(tissue.sum())
    if n_tissue == 0:
        raise ScanError("label map has no tissue voxels (labels 1..6)")

    scale = float(np.percentile(magnitude[tissue], percentile)) or float(magnitude[tissue].max())
    normalised = np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)
    total = float(magnitude[tissue].sum())

    n_voxels = np.bincount(labels.ravel(), minlength=MAX_LABEL + 1)
    layer_sums = np.bincount(labels.ravel(), weights=magnitude.ravel(), minlength=MAX_LABEL + 1)
    normalised_sums = np.bincount(
        labels.ravel(), weights=normalised.ravel(), minlength=MAX_LABEL + 1
    )

    rows = []
    for layer in TISSUE_LAYERS:
        n = int(n_voxels[layer])
        fraction = n / n_tissue
        share = layer_sums[layer] / total if total > 0 else float("nan")
        rows.append(
            LayerRow(
                layer=layer.key,
                layer_index=int(layer),
                n_voxels=n,
                volume_fraction=fraction,
                mean_saliency=float(normalised_sums[layer] / n) if n else float("nan"),
                saliency_share=float(share),
                enrichment=float(share / fraction) if n else float("nan"),
                ablation_delta=(
                    None
                    if ablation_deltas is None
                    else float(ablation_deltas.get(layer.key, float("nan")))
                ),
            )
        )
    return rows
