"""Every layer one voxel thinner or thicker: the boundary sensitivity analysis of a layer profile.

A segmentation errs mostly at the layer boundaries, by about a voxel, so a finding that hinges
on the voxels at a layer's edge is fragile. Two perturbations of a label map, each giving one
boolean mask per tissue layer (``boundary_masks``):

* ``eroded``: each layer's own binary erosion by one voxel (6-connected: a voxel stays when its
  face neighbours along every axis are in the same layer). Eroded-away voxels count to no layer.
  The volume's edge is not a boundary (layers run through the field of view; eroding there would
  remove tissue no segmenter could have misplaced).
* ``dilated``: each layer's own binary dilation by one voxel (6-connected), within tissue
  (background never enters an aggregate). A voxel on the boundary of layers A and B belongs to
  both dilated A and dilated B: the masks overlap, by design. Growing every layer at once is
  only possible with overlaps (a partition that grows one layer shrinks its neighbour, which is
  erosion), and overlapping masks need no rule for contested voxels: no layer order decides.

A layer at most two voxels thick can vanish under erosion; its value is then NaN (no evidence
either way), never 0. Map methods re-aggregate their map over the masks (``boundary_mean_saliency``:
``mean_saliency`` on the same per-scan scale, only the grouping of voxels changes); layer
ablation ablates each mask in extra batched passes (``ablation``); layer Shapley is not re-run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from layer_platform.attribution.aggregation import NORMALISATION_PERCENTILE, normalise
from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform.saliency_names import BOUNDARIES, LAYER_VALUE_METHODS, boundary_column


def _face_pairs(shape: tuple[int, ...]) -> Iterator[tuple[tuple[slice, ...], ...]]:
    """Per axis, ``(low, high)`` index pairs: ``low`` the voxels with a face neighbour one step
    up that axis, ``high`` those neighbours (so ``high`` voxels have theirs in ``low``)."""
    for axis in range(len(shape)):
        low = tuple(slice(None, -1) if a == axis else slice(None) for a in range(len(shape)))
        high = tuple(slice(1, None) if a == axis else slice(None) for a in range(len(shape)))
        yield low, high


def boundary_masks(labels: np.ndarray, boundary: str) -> dict[Layer, np.ndarray]:
    """Per tissue layer, its voxels ``eroded`` or ``dilated`` by one voxel (6-connected, see the
    module): each layer's binary morphology with a face-neighbour cross (``scipy.ndimage``'s,
    erosion with the volume's edge inside), computed by comparing the label map with its
    face-shifted copies, so every layer's erosion takes one pass."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}; got {boundary!r}")
    labels = np.asarray(labels)
    pairs = list(_face_pairs(labels.shape))
    if boundary == "eroded":
        interior = np.ones(labels.shape, dtype=bool)  # every face neighbour in the same layer
        for low, high in pairs:
            same = labels[low] == labels[high]
            interior[low] &= same
            interior[high] &= same
        return {layer: (labels == layer) & interior for layer in TISSUE_LAYERS}
    tissue = labels > Layer.BACKGROUND
    masks = {}
    for layer in TISSUE_LAYERS:
        own = labels == layer
        grown = own.copy()
        for low, high in pairs:
            grown[low] |= own[high]
            grown[high] |= own[low]
        masks[layer] = grown & tissue
    return masks


def boundary_mean_saliency(
    attribution: np.ndarray,
    labels: np.ndarray,
    masks: Mapping[Layer, np.ndarray],
    *,
    counted: np.ndarray | None = None,
    percentile: float = NORMALISATION_PERCENTILE,
) -> dict[str, float]:
    """Per layer key, ``mean_saliency`` over its perturbed mask: ``|attribution|`` scaled as
    ``aggregate_layers`` scales it (the percentile of the as-segmented counted tissue), so only
    the grouping of voxels changes. ``counted`` (None: every voxel) restricts the voxels as
    ``aggregate_layers``' ``measured`` does; NaN for a mask without a counted voxel."""
    return _mask_means(*_normalised_tissue(attribution, labels, counted, percentile), masks)


def _normalised_tissue(
    attribution: np.ndarray, labels: np.ndarray, counted: np.ndarray | None, percentile: float
) -> tuple[np.ndarray, np.ndarray]:
    """The counted tissue voxels, and ``|attribution|`` on the ``mean_saliency`` scale there
    (0 elsewhere): what every perturbed mask of one map is averaged over."""
    magnitude = np.abs(np.asarray(attribution, dtype=np.float64))
    inside = np.asarray(labels) > Layer.BACKGROUND
    if counted is not None:
        inside &= counted
    normalised = np.zeros(magnitude.shape)
    normalised[inside] = normalise(magnitude[inside], percentile)
    return normalised, inside


def _mask_means(
    normalised: np.ndarray, inside: np.ndarray, masks: Mapping[Layer, np.ndarray]
) -> dict[str, float]:
    found = {}
    for layer, mask in masks.items():
        voxels = mask & inside
        found[layer.key] = float(normalised[voxels].mean()) if voxels.any() else float("nan")
    return found


def boundary_scores(
    method: str,
    voxel_map: np.ndarray,
    labels: np.ndarray,
    masks: Mapping[str, Mapping[Layer, np.ndarray]],
    *,
    counted: np.ndarray | None = None,
    ablated: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, dict[str, float]]:
    """Per boundary column (``boundary_column``), layer key to the method's score with every
    layer perturbed: a map method's re-aggregated ``mean_saliency``, layer ablation's
    ``ablated`` deltas (its ``extras["boundary_deltas"]``); empty for a layer-value method
    without them (layer Shapley, or ablation with its extra passes off)."""
    if method in LAYER_VALUE_METHODS:
        found = ablated or {}
        return {boundary_column(method, b): dict(found[b]) for b in BOUNDARIES if b in found}
    tissue = _normalised_tissue(voxel_map, labels, counted, NORMALISATION_PERCENTILE)
    return {boundary_column(method, b): _mask_means(*tissue, masks[b]) for b in BOUNDARIES}
