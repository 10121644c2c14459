"""Voxel attribution toward the MP logit, summed inside the six tissue layers (the LAYER method).

One call shape for every method (``attribute("integrated_gradients", model, scan, ...)``), a
per-layer profile (``aggregate_layers``) and the checks that make a profile trustworthy
(``sanity``). Like captum, everything public is importable from this package.
"""

from layer_platform.attribution.ablation import layer_ablation
from layer_platform.attribution.aggregation import (
    NORMALISATION_PERCENTILE,
    LayerRow,
    aggregate_layers,
)
from layer_platform.attribution.baselines import BASELINE_KINDS, make_baseline, resolve_baseline
from layer_platform.attribution.core import (
    AttributionConfig,
    AttributionMethod,
    AttributionResult,
    LogitFn,
    mp_logit,
)
from layer_platform.attribution.gradcam import gradcam
from layer_platform.attribution.integrated_gradients import integrated_gradients
from layer_platform.attribution.occlusion import occlusion
from layer_platform.attribution.registry import METHODS, attribute, get_method
from layer_platform.attribution.saliency import saliency
from layer_platform.attribution.sanity import (
    PROFILE_FIELDS,
    RandomizationReport,
    RandomizationStep,
    completeness_error,
    model_randomization_check,
    parameterised_modules,
    passes_completeness,
    randomize_model,
)

__all__ = [
    "BASELINE_KINDS",
    "METHODS",
    "NORMALISATION_PERCENTILE",
    "PROFILE_FIELDS",
    "AttributionConfig",
    "AttributionMethod",
    "AttributionResult",
    "LayerRow",
    "LogitFn",
    "RandomizationReport",
    "RandomizationStep",
    "aggregate_layers",
    "attribute",
    "completeness_error",
    "get_method",
    "gradcam",
    "integrated_gradients",
    "layer_ablation",
    "make_baseline",
    "model_randomization_check",
    "mp_logit",
    "occlusion",
    "parameterised_modules",
    "passes_completeness",
    "randomize_model",
    "resolve_baseline",
    "saliency",
]
