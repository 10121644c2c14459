"""Plain gradient saliency: how sensitive the MP logit is to each voxel, ignoring its value."""

from __future__ import annotations

import numpy as np
from captum.attr import Saliency
from torch import Tensor, nn

from layer_platform.attribution.core import (
    AttributionConfig,
    AttributionResult,
    LogitFn,
    to_numpy,
)


def saliency(
    forward: LogitFn,
    inputs: Tensor,
    *,
    baseline: Tensor | None,
    layers_map: np.ndarray | None,
    target_layer: nn.Module | None,
    config: AttributionConfig,
) -> AttributionResult:
    """``|d logit / d x|`` summed over channels; needs no baseline, labels or layer.

    ``extras["channel_maps"]`` keeps the ``(C, L, D, S)`` per-channel maps, so a caller can
    leave a channel out where it was not measured. Gradients flow into a detached view, so the
    caller's tensor keeps its ``requires_grad``.
    """
    gradients = to_numpy(Saliency(forward).attribute(inputs.detach().requires_grad_(), abs=True)[0])
    return AttributionResult(
        method="saliency", map=gradients.sum(axis=0), extras={"channel_maps": gradients}
    )
