"""Voxel attribution toward the MP logit, summed inside the six tissue layers (the LAYER method).

One call shape for every method (``attribute("integrated_gradients", model, scan, ...)``), a
per-layer profile (``aggregate_layers``) and the checks that make a profile trustworthy
(``sanity``). Like captum, everything public is importable from this package.
"""

from layer_platform.attribution.ablation import layer_ablation
from layer_platform.attribution.aggregation import (
    NORMALISATION_PERCENTILE,
    LayerRow,
    NonFiniteMap,
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
from layer_platform.attribution.scan_profile import (
    MethodProfile,
    cohort_fill_volume,
    control_layer_means,
    integrated_gradients_by_channel,
    profile_scan,
)
from layer_platform.saliency_names import ABLATION_METHOD, DEFAULT_METHOD, PLATFORM_METHODS

__all__ = [
    "ABLATION_METHOD",
    "BASELINE_KINDS",
    "DEFAULT_METHOD",
    "METHODS",
    "NORMALISATION_PERCENTILE",
    "PLATFORM_METHODS",
    "PROFILE_FIELDS",
    "AttributionConfig",
    "AttributionMethod",
    "AttributionResult",
    "LayerRow",
    "LogitFn",
    "MethodProfile",
    "NonFiniteMap",
    "RandomizationReport",
    "RandomizationStep",
    "aggregate_layers",
    "attribute",
    "cohort_fill_volume",
    "completeness_error",
    "control_layer_means",
    "get_method",
    "gradcam",
    "integrated_gradients",
    "integrated_gradients_by_channel",
    "layer_ablation",
    "make_baseline",
    "model_randomization_check",
    "mp_logit",
    "occlusion",
    "parameterised_modules",
    "passes_completeness",
    "profile_scan",
    "randomize_model",
    "resolve_baseline",
    "saliency",
]
