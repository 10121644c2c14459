"""Checks that an attribution can be trusted before its layer profile is reported.

* Completeness (Integrated Gradients): the map must add up to the logit change it explains.
* Model randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): a method whose
  layer profile survives re-initialising the model's weights explains the input (edges,
  brightness), not the model, and fails.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

from layer_platform.attribution.aggregation import (
    aggregate_layers,
    counted_map,
    measured_channels,
)
from layer_platform.attribution.core import (
    AttributionConfig,
    AttributionMethod,
    AttributionResult,
    check_label_map,
    module_name,
)
from layer_platform.attribution.registry import attribute
from layer_platform.classification.inference import inference_network

#: ``LayerRow`` fields that can serve as the layer profile compared by the randomisation check.
PROFILE_FIELDS: tuple[str, ...] = ("saliency_share", "mean_saliency", "enrichment")


def completeness_error(result: AttributionResult) -> float:
    """``|sum(map) - (f(x) - f(b))| / |f(x) - f(b)|`` of an Integrated Gradients result.

    Measured on the returned map (channels summed), so it audits what is stored, not captum's
    internals. Infinite when the map is non-zero although the logits at both ends are equal.
    """
    try:
        gap = result.extras["logit"] - result.extras["baseline_logit"]
    except KeyError:
        raise ValueError(
            f"completeness needs an integrated_gradients result; got {result.method!r}"
        ) from None
    error = abs(float(np.sum(result.map, dtype=np.float64)) - gap)
    if gap == 0:
        return 0.0 if error == 0 else math.inf
    return error / abs(gap)


def passes_completeness(result: AttributionResult, tolerance: float = 0.05) -> bool:
    """True when the relative completeness error is within ``tolerance`` (e.g. 5 %).

    A failure usually means too few ``ig_steps`` for a very non-linear model.
    """
    return completeness_error(result) <= tolerance


def parameterised_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules owning weights, in registration order (input side first, for typical nets)."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if next(module.parameters(recurse=False), None) is not None
    ]


def depth_levels(model: nn.Module) -> list[list[tuple[str, nn.Module]]]:
    """Weighted modules by depth, input side first: what one cascade step re-initialises.

    A plain network has one module per level. An ensemble that names its members
    (``member_prefixes()``, e.g. ``FoldEnsemble``) has, per level, the modules at the same
    distance from the output in every member, so a cascade randomizes all members' top layers
    together, as the reported (averaged) prediction sees them.
    """
    modules = parameterised_modules(model)
    prefixes = getattr(model, "member_prefixes", None)
    if prefixes is None:
        return [[entry] for entry in modules]
    members = [
        [(n, m) for n, m in modules if any(n == p or n.startswith(p + ".") for p in member)]
        for member in prefixes()
    ]
    depth = max(len(member) for member in members)
    return [
        [
            member[len(member) - depth + level]
            for member in members
            if len(member) - depth + level >= 0
        ]
        for level in range(depth)
    ]


def randomize_model(model: nn.Module, *, top: int | None = None, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose last ``top`` depth levels (``depth_levels``; all when None) of
    weighted modules are re-initialised.

    Re-initialisation uses each module's own ``reset_parameters`` (its training-time init), under
    a forked, seeded RNG so the caller's random state is untouched; the top module draws first,
    so a cascade step keeps the weights of the steps before it. ``model`` is not modified.
    """
    randomized = copy.deepcopy(model)
    levels = depth_levels(randomized)
    n = len(levels) if top is None else top
    if not 1 <= n <= len(levels):
        raise ValueError(f"top must lie in 1..{len(levels)} (weighted depth levels); got {top}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for level in reversed(levels[len(levels) - n :]):
            for name, module in level:
                if not hasattr(module, "reset_parameters"):
                    raise ValueError(
                        f"module {name!r} ({type(module).__name__}) has no reset_parameters()"
                    )
                module.reset_parameters()
    return randomized


def cascade_steps(n_modules: int) -> list[int]:
    """Top-down cascade of re-initialised weighted modules: 1, 2, 4, ... then all.

    Adebayo et al. randomize the last layers first and then progressively more; doubling keeps
    the cost at about log2(n) attributions per scan instead of n, and always ends fully random.
    """
    steps = [1]
    while steps[-1] * 2 < n_modules:
        steps.append(steps[-1] * 2)
    return [*steps, n_modules] if steps[-1] != n_modules else steps


@dataclass(frozen=True)
class RandomizationStep:
    """One comparison: trained model vs a copy with ``n_randomized`` top modules re-initialised.

    Correlations are Spearman's rho; NaN when a profile is constant (e.g. the randomised
    model's map is zero everywhere), which shares no ranking and so does not count as failing;
    scans with a NaN voxel rho are left out of the voxel mean.
    """

    n_randomized: int
    layer_correlation: float
    voxel_correlation: float | None


@dataclass(frozen=True)
class RandomizationReport:
    """Outcome of the model-randomisation check; the verdict uses the last (fully random) step."""

    method: str
    profile: str
    bar: float
    steps: tuple[RandomizationStep, ...]

    @property
    def passed(self) -> bool:
        """False when a correlation of the final step reaches ``bar``: the profile ignores the
        model."""
        final = self.steps[-1]
        correlations = [final.layer_correlation, final.voxel_correlation]
        return not any(c is not None and c >= self.bar for c in correlations)


def model_randomization_check(
    method: str | AttributionMethod,
    model: nn.Module,
    scans: Sequence[tuple[Tensor, np.ndarray]],
    *,
    target_layer: nn.Module | None = None,
    config: AttributionConfig | Sequence[AttributionConfig] | None = None,
    cascading: bool | Sequence[int] = False,
    profile: str = "enrichment",
    voxels: bool = True,
    bar: float = 0.8,
    seed: int = 0,
    no_signal_channels: Sequence[int] = (),
) -> RandomizationReport:
    """Compare ``method`` on ``model`` and on randomised copies, over ``scans``.

    ``scans`` are ``(inputs (1, C, L, D, S), layers_map (L, D, S))`` pairs. The layer
    correlation is taken over the scans' concatenated profiles: six layers from one scan give a
    noisy rank correlation, so pass several scans (with different anatomy). The default profile,
    ``enrichment``, is volume-neutral: ``saliency_share`` follows layer size for any roughly
    uniform map, so it would correlate between trained and random models through anatomy alone.
    The voxel correlation is the mean over scans of the Spearman rho of tissue ``|map|``.

    ``bar``: a model-blind method scores 1.0, while a rank correlation of six layers between
    unrelated profiles still spreads to about +-0.7 for one scan; 0.8 separates the two, so a
    flag means "nearly the same ranking without the trained weights".

    ``cascading`` re-initialises the top 1, 2, ... weighted modules in turn (one attribution per
    weighted module and scan, so costly for deep nets) to show where the maps stop depending on
    the weights, or, as a sequence, the top ``n`` modules for each ``n`` in it (e.g.
    ``cascade_steps``); otherwise the whole model is re-initialised at once. The verdict uses
    the last step. ``config`` is one config for every scan or one per scan (the reported run's
    per-scan reference). ``target_layer`` (Grad-CAM) is found in each copy by its module name.
    ``no_signal_channels`` (encoded SWE) restricts profiles and voxel correlations to measured
    voxels, as the reported run's aggregates are (``scan_profile.profile_scan``).
    """
    if profile not in PROFILE_FIELDS:
        raise ValueError(f"profile must be one of {PROFILE_FIELDS}; got {profile!r}")
    checked = [(x, check_label_map(labels, tuple(x.shape[2:]))) for x, labels in scans]
    if not checked:
        raise ValueError("the randomisation check needs at least one scan")
    measured = [
        measured_channels(x[0].detach().cpu().numpy(), no_signal_channels) for x, _ in checked
    ]
    counted = [
        m.any(axis=0) & (labels > 0) for m, (_, labels) in zip(measured, checked, strict=True)
    ]
    layer_name = module_name(model, target_layer)
    configs = list(config) if isinstance(config, Sequence) else [config] * len(checked)
    if len(configs) != len(checked):
        raise ValueError(f"got {len(configs)} configs for {len(checked)} scans")

    names: set[str] = set()

    def run(net: nn.Module) -> list[np.ndarray]:
        """Each scan's aggregated map (measured channels only) under ``net``, folded once for
        all scans (``attribute`` would otherwise copy and fold it per scan)."""
        network = inference_network(net)
        layer = None if layer_name is None else network.get_submodule(layer_name)
        maps = []
        for (x, labels), c, m in zip(checked, configs, measured, strict=True):
            result = attribute(method, network, x, layers_map=labels, target_layer=layer, config=c)
            names.add(result.method)
            maps.append(counted_map(result, m))
        return maps

    def layer_profile(maps: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(
            [
                _profile(voxel_map, labels, c, profile)
                for voxel_map, c, (_, labels) in zip(maps, counted, checked, strict=True)
            ]
        )

    trained = run(model)
    n_modules = len(depth_levels(model))
    steps = []
    if isinstance(cascading, Sequence):
        tops = list(cascading)
    else:
        tops = list(range(1, n_modules + 1)) if cascading else [n_modules]
    for top in tops:
        randomized = run(randomize_model(model, top=top, seed=seed))
        voxel_rhos = [
            _spearman(np.abs(a[c]), np.abs(b[c]))
            for a, b, c in zip(trained, randomized, counted, strict=True)
        ]
        steps.append(
            RandomizationStep(
                n_randomized=top,
                layer_correlation=_spearman(layer_profile(trained), layer_profile(randomized)),
                voxel_correlation=_finite_mean(voxel_rhos) if voxels else None,
            )
        )
    return RandomizationReport(method=names.pop(), profile=profile, bar=bar, steps=tuple(steps))


def _profile(
    voxel_map: np.ndarray, labels: np.ndarray, counted: np.ndarray, field: str
) -> np.ndarray:
    rows = aggregate_layers(voxel_map, labels, measured=counted)
    return np.array([getattr(row, field) for row in rows], dtype=np.float64)


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation over entries finite in both (absent layers have NaN enrichment)."""
    finite = np.isfinite(a) & np.isfinite(b)
    if finite.sum() < 2 or np.ptp(a[finite]) == 0 or np.ptp(b[finite]) == 0:
        return float("nan")
    return float(spearmanr(a[finite], b[finite]).statistic)
