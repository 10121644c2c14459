"""Grad-CAM on the classifier's last conv block, brought up to the input voxel grid."""

from __future__ import annotations

import numpy as np
from captum.attr import LayerAttribution, LayerGradCam
from torch import Tensor, nn

from layer_platform.attribution.core import (
    AttributionConfig,
    AttributionResult,
    LogitFn,
    to_numpy,
)


def gradcam(
    forward: LogitFn,
    inputs: Tensor,
    *,
    baseline: Tensor | None,
    layers_map: np.ndarray | None,
    target_layer: nn.Module | None,
    config: AttributionConfig,
) -> AttributionResult:
    """ReLU(channel-weighted activations) of ``target_layer``, interpolated to ``(L, D, S)``.

    The ReLU keeps only evidence *for* MP, as in the original Grad-CAM; it is applied before
    up-sampling, and trilinear interpolation of non-negative values stays non-negative.
    """
    if target_layer is None:
        raise ValueError("gradcam needs target_layer: the classifier's last conv block")
    coarse = LayerGradCam(forward, target_layer).attribute(
        inputs.detach().requires_grad_(), relu_attributions=True
    )
    if coarse.ndim != 5:
        raise ValueError(
            f"gradcam's target_layer must output a 3D feature map (N, C, l, d, s); "
            f"got {tuple(coarse.shape)}"
        )
    fine = LayerAttribution.interpolate(
        coarse, tuple(inputs.shape[2:]), interpolate_mode=config.gradcam_interpolation
    )
    return AttributionResult(method="gradcam", map=to_numpy(fine[0, 0]))
