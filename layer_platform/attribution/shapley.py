"""Layer Shapley values: each layer's average marginal contribution to the MP logit over every
coalition of the other layers.

Single-layer ablation asks "what is lost without this layer, all others kept?": evidence that
two layers carry redundantly is lost with neither alone, so ablation credits neither. Shapley
values average the marginal contribution over all ``2^k`` coalitions of the ``k`` present
layers (64 for six), so shared evidence is split between the layers that share it.

A coalition's absent layers are replaced exactly as ``layer_ablation`` replaces one layer (the
configured fill; background keeps the scan's own values), so the value of the full coalition is
``f(x)``, of the empty one ``f(reference)``, and the values add up to their difference
(efficiency), which is audited per scan (``efficiency_error``). Sign convention as ablation:
positive means the layer carries MP evidence. Cost: ``2^k`` forward passes per scan, batched
``perturbations_per_eval`` at a time (one pass for the full coalition is shared with f(x)).
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import torch
from torch import Tensor, nn

from layer_platform.attribution.ablation import layer_fill, masked_logits
from layer_platform.attribution.core import (
    AttributionConfig,
    AttributionResult,
    LogitFn,
)
from layer_platform.labels import TISSUE_LAYERS, Layer


def shapley_from_values(values: np.ndarray, k: int) -> np.ndarray:
    """Exact Shapley values of ``k`` players from ``values[mask]``, the value of the coalition
    whose members are the set bits of ``mask`` (``2^k`` entries)."""
    if values.shape != (2**k,):
        raise ValueError(f"need {2**k} coalition values for {k} players; got {values.shape}")
    weight = [math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) for s in range(k)]
    phi = np.zeros(k)
    for mask in range(2**k):
        size = mask.bit_count()
        for i in range(k):
            if not mask >> i & 1:
                phi[i] += weight[size] * (values[mask | 1 << i] - values[mask])
    return phi


def coalition_values(
    forward: LogitFn, inputs: Tensor, fill: Tensor, members: list[Tensor], batch: int
) -> np.ndarray:
    """The logit with only the layers in each coalition kept (the rest replaced by ``fill``),
    for every coalition ``mask`` of ``members`` (boolean voxel masks), in float64."""
    none = torch.zeros_like(members[0])
    removed = [  # per coalition, the voxels of the layers it leaves out
        reduce(torch.logical_or, (m for i, m in enumerate(members) if not mask >> i & 1), none)
        for mask in range(2 ** len(members))
    ]
    return masked_logits(
        forward, removed, lambda part: torch.where(part[:, None], fill, inputs), batch
    ).numpy()


def layer_shapley(
    forward: LogitFn,
    inputs: Tensor,
    *,
    baseline: Tensor | None,
    layers_map: np.ndarray | None,
    target_layer: nn.Module | None,
    config: AttributionConfig,
) -> AttributionResult:
    """Exact Shapley value of each present layer (``extras["layer_deltas"]``, NaN for an absent
    layer, as ``layer_ablation`` reports its deltas); the map holds each voxel's layer value.

    ``extras``: ``logit`` f(x), ``baseline_logit`` f(reference), ``efficiency_error``
    ``|sum(values) - (f(x) - f(reference))|``, and the joint ablations read off the coalitions:
    ``joint_non_muscle_delta`` (f(x) minus the logit with every non-muscle layer replaced) and
    ``joint_muscle_delta`` (muscle alone replaced).
    """
    labels, present, _, fill = layer_fill("layer_shapley", inputs, baseline, layers_map, config)
    members = [torch.as_tensor(labels == layer, device=inputs.device) for layer in present]
    batch = max(1, config.perturbations_per_eval)
    values = coalition_values(forward, inputs, fill, members, batch)
    phi = shapley_from_values(values, len(present))
    full, empty = values[-1], values[0]
    layer_values = {layer.key: float("nan") for layer in TISSUE_LAYERS}
    voxel_values = np.zeros(labels.shape, dtype=np.float64)
    for layer, value in zip(present, phi, strict=True):
        layer_values[layer.key] = float(value)
        voxel_values[labels == layer] = value
    extras = {
        "layer_deltas": layer_values,
        "logit": float(full),
        "baseline_logit": float(empty),
        "efficiency_error": abs(float(phi.sum()) - float(full - empty)),
    }
    if Layer.MUSCLE in present:
        muscle = 1 << present.index(Layer.MUSCLE)
        extras["joint_non_muscle_delta"] = float(full - values[muscle])
        extras["joint_muscle_delta"] = float(full - values[(2 ** len(present) - 1) ^ muscle])
    return AttributionResult(method="layer_shapley", map=voxel_values, extras=extras)
