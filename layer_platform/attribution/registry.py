"""Methods by name and the single entry point, ``attribute``."""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from layer_platform.attribution.ablation import layer_ablation
from layer_platform.attribution.core import (
    AttributionConfig,
    AttributionMethod,
    AttributionResult,
    check_inputs,
    evaluating,
    module_name,
    mp_logit,
)
from layer_platform.attribution.gradcam import gradcam
from layer_platform.attribution.integrated_gradients import integrated_gradients
from layer_platform.attribution.occlusion import occlusion
from layer_platform.attribution.saliency import saliency
from layer_platform.attribution.shapley import layer_shapley
from layer_platform.classification.inference import inference_network

METHODS: dict[str, AttributionMethod] = {
    "integrated_gradients": integrated_gradients,
    "saliency": saliency,
    "gradcam": gradcam,
    "occlusion": occlusion,
    "layer_ablation": layer_ablation,
    "layer_shapley": layer_shapley,
}
#: Methods that compare the scan with a reference (``baselines.resolve_baseline``); the others
#: take none.
USES_REFERENCE = frozenset({"integrated_gradients", "occlusion", "layer_ablation", "layer_shapley"})


def get_method(method: str | AttributionMethod) -> AttributionMethod:
    """Look a method up by name; a callable with the shared call shape is returned as is."""
    if not isinstance(method, str):
        return method
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(
            f"unknown attribution method {method!r}; expected one of: {', '.join(METHODS)}"
        ) from None


def attribute(
    method: str | AttributionMethod,
    model: nn.Module,
    inputs: Tensor,
    *,
    baseline: Tensor | None = None,
    layers_map: np.ndarray | None = None,
    target_layer: nn.Module | None = None,
    config: AttributionConfig | None = None,
) -> AttributionResult:
    """Attribute the MP logit of ``model`` on one scan ``(1, C, L, D, S)`` with ``method``.

    The method runs on ``inference_network(model)``: the model in eval mode with its batch
    norms folded into their convolutions (the same function up to rounding, and cheaper per
    pass); ``model``'s own mode and weights are left as they were. ``baseline`` overrides
    ``config.baseline``; ``layers_map`` ``(L, D, S)`` is needed by the anatomy-aware baselines
    and by layer ablation; ``target_layer`` (a module of ``model``) by Grad-CAM.
    """
    check_inputs(inputs)
    network = inference_network(model)
    name = module_name(model, target_layer)
    with evaluating(network):
        return get_method(method)(
            mp_logit(network),
            inputs,
            baseline=baseline,
            layers_map=layers_map,
            target_layer=None if name is None else network.get_submodule(name),
            config=config or AttributionConfig(),
        )
