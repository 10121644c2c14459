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

    Gradients flow into a detached view, so the caller's tensor keeps its ``requires_grad``.
    """
    gradients = Saliency(forward).attribute(inputs.detach().requires_grad_(), abs=True)
    return AttributionResult(method="saliency", map=to_numpy(gradients[0].sum(dim=0)))
