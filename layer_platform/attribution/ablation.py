"""Layer ablation: the change in the MP logit when one tissue layer is replaced by a neutral fill.

Sign convention: ``delta = logit(original) - logit(layer ablated)``; a positive delta means the
layer carries MP evidence (removing it lowers the logit), a negative one that it argues against
MP. This is captum's ``FeatureAblation`` convention, with the label map as the feature mask and
the fill (see ``baselines``) as the baselines tensor.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import FeatureAblation
from torch import Tensor, nn

from layer_platform.attribution.baselines import resolve_baseline
from layer_platform.attribution.core import (
    AttributionConfig,
    AttributionResult,
    LogitFn,
    check_label_map,
    to_numpy,
)
from layer_platform.labels import TISSUE_LAYERS, Layer


def layer_fill(
    method: str,
    inputs: Tensor,
    baseline: Tensor | None,
    layers_map: np.ndarray | None,
    config: AttributionConfig,
) -> tuple[np.ndarray, list[Layer], Tensor, Tensor]:
    """What the layer-removal methods share: the checked labels, the present tissue layers, the
    background mask, and the fill that replaces a removed layer (background keeps the scan's
    own values, so it never changes)."""
    if layers_map is None:
        raise ValueError(f"{method} needs the scan's layers_map (the six-layer labels)")
    labels = check_label_map(layers_map, tuple(inputs.shape[2:]))
    present = [Layer(int(k)) for k in np.unique(labels) if k != Layer.BACKGROUND]
    if not present:
        raise ValueError(f"{method} needs at least one tissue layer in layers_map")
    background = torch.as_tensor(labels == Layer.BACKGROUND, device=inputs.device)
    fill = torch.where(background, inputs, resolve_baseline(baseline, inputs, labels, config))
    return labels, present, background, fill


def layer_ablation(
    forward: LogitFn,
    inputs: Tensor,
    *,
    baseline: Tensor | None,
    layers_map: np.ndarray | None,
    target_layer: nn.Module | None,
    config: AttributionConfig,
) -> AttributionResult:
    """Ablate each present layer once: one original pass plus one per layer (7 for six layers).

    Background is not a feature: its voxels are folded into the first present layer with the
    fill set to the scan's own values there, so they never change. ``extras["layer_deltas"]``
    maps each layer key to its delta (NaN for a layer absent from the scan); the map holds each
    voxel's layer delta (0 in background).
    """
    labels, present, background, fill = layer_fill(
        "layer_ablation", inputs, baseline, layers_map, config
    )
    mask = torch.as_tensor(labels, device=inputs.device).masked_fill(background, present[0])
    deltas = FeatureAblation(forward).attribute(
        inputs,
        baselines=fill,
        feature_mask=mask[None, None],
        perturbations_per_eval=config.perturbations_per_eval,
    )
    voxel_deltas = to_numpy(deltas[0, 0]).copy()
    voxel_deltas[labels == Layer.BACKGROUND] = 0.0
    layer_deltas = {layer.key: float("nan") for layer in TISSUE_LAYERS}
    for layer in present:
        layer_deltas[layer.key] = float(voxel_deltas[labels == layer][0])
    return AttributionResult(
        method="layer_ablation", map=voxel_deltas, extras={"layer_deltas": layer_deltas}
    )
