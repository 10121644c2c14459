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

#: Depth of the default occluding band (layers are depth-stratified sheets: depth is the axis
#: that matters, and the box spans the full width and sweep).
BAND_MM = 2.0


def depth_bands(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], band_mm: float = BAND_MM
) -> tuple[int, int, int]:
    """The occluding box (and stride) that cuts a grid into full-width, full-sweep depth bands
    about ``band_mm`` deep, in voxels (lateral, depth, sweep).

    The band's depth is the divisor of the grid's depth nearest ``band_mm / spacing``: boxes of
    a stride that does not divide the depth would leave its last voxels in no box. So the bands
    keep one physical meaning on every grid (8 voxels = 2 mm on the CPU grid, 22 = 2.2 mm on
    the GPU grid), where one voxel count would not.
    """
    if band_mm <= 0:
        raise ValueError(f"band_mm must be > 0, got {band_mm}")
    lateral, depth, sweep = shape
    wanted = band_mm / spacing[1]
    divisors = [d for d in range(1, depth + 1) if depth % d == 0]
    band = min(divisors, key=lambda d: (abs(d - wanted), d))
    return lateral, band, sweep


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
