"""Occlusion: the logit drop when a sliding box of voxels is replaced by the baseline."""

from __future__ import annotations

import numpy as np
from captum.attr import Occlusion
from torch import Tensor, nn

from layer_platform.attribution.baselines import resolve_baseline
from layer_platform.attribution.core import (
    AttributionConfig,
    AttributionResult,
    LogitFn,
    to_numpy,
)


def occlusion(
    forward: LogitFn,
    inputs: Tensor,
    *,
    baseline: Tensor | None,
    layers_map: np.ndarray | None,
    target_layer: nn.Module | None,
    config: AttributionConfig,
) -> AttributionResult:
    """Each voxel gets the mean ``logit(x) - logit(x with box occluded)`` over boxes covering it.

    The box spans all channels and is clipped to the scan, so small scans still get one box.
    """
    reference = resolve_baseline(baseline, inputs, layers_map, config)
    n_channels, *grid = inputs.shape[1:]
    window = tuple(min(w, n) for w, n in zip(config.occlusion_window, grid, strict=True))
    attributions = Occlusion(forward).attribute(
        inputs,
        sliding_window_shapes=(n_channels, *window),
        strides=(n_channels, *config.occlusion_stride),
        baselines=reference,
        perturbations_per_eval=config.perturbations_per_eval,
    )
    return AttributionResult(method="occlusion", map=to_numpy(attributions[0].mean(dim=0)))
