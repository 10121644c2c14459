"""Benchmark 12: attribution in the training precision against float32, speed and agreement.

The classifiers train in bfloat16 autocast where the CPU multiplies it in hardware (float16 on
CUDA, ``compute.training_precision``), and every reported attribution is computed in float32.
The speed issue allows a lower attribution precision where its maps agree with float32's: the
cohort's layer order unchanged and the maps correlated at >= 0.99. This benchmark measures both,
with the speed the change would buy, for every method the platform reports.

Per cohort kind (``COHORTS``: the simulator's default drivers, and the same drivers at half
their effect) and single mode, one classifier is trained as the platform trains it
(``ClassifierConfig()`` defaults in the training precision) on a simulated development cohort
(seed ``ctx.seed``), and explains scans of an external cohort (seed + 1) with the
platform's attribution settings on this device (``SaliencyResource``; the ``layer_mean``
reference, as the platform's frozen cohort reference needs a run's controls), each scan through
``scan_profile.profile_scan`` in float32 and under the low-precision autocast (channels-last,
the logit head in float32 as in training). Rows per cohort kind, mode and method:

* ``map_correlation``: the mean over scans of the Pearson correlation of the two aggregated
  voxel maps (target >= 0.99); its ratio is the speed-up, float32 seconds over low-precision
  seconds for the same scans (fastest of interleaved rounds; no target of its own).
* ``layer_order_changes``: pairs of layers ordered differently by the cohort means of the
  method's layer score (``mean_saliency``; ``ablation_delta`` for layer ablation), target 0.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from itertools import combinations
from math import comb

import numpy as np
import torch
from torch import Tensor, nn

from bench.core import Context, Result, Target, fmt_s, interleaved, measured, not_run
from bench.data import early_stopping_split, labelled_items
from layer_platform.attribution.aggregation import NonFiniteMap
from layer_platform.attribution.scan_profile import MethodProfile, profile_scan
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.modes import no_signal_channels
from layer_platform.classification.network import last_conv_block
from layer_platform.classification.training import train_classifier
from layer_platform.compute import Precision, training_precision
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.labels import TISSUE_LAYERS
from layer_platform.simulation.config import SimulationConfig

BENCHMARK = "attribution_precision"
AGREES = Target("value", ">=", 0.99)
#: Layer pairs reordered, or scans failing an audit they passed in float32: none.
NONE = Target("value", "<=", 0)
#: Each method's rows (what, unit, target); Integrated Gradients adds the completeness row.
_ROWS = (
    ("map_correlation", "r", AGREES),
    ("layer_order_changes", "pairs", NONE),
    ("completeness_failures_added", "scans", NONE),
)
MODES = ("bmode", "swe", "bmode_swe")
#: Pairs of tissue layers whose order a ranking fixes.
LAYER_PAIRS = comb(len(TISSUE_LAYERS), 2)
_DEFAULT = SimulationConfig()
#: The simulator's default drivers, and the same drivers at half their effect (the smaller
#: effect size of the validation matrix): how much signal a model finds sets how far its maps
#: stand above rounding noise.
COHORTS: dict[str, dict[str, float]] = {
    "default_effect": {},
    "half_effect": {
        "bmode_effect_db": _DEFAULT.bmode_effect_db / 2,
        "swe_effect": _DEFAULT.swe_effect / 2,
    },
}


class Autocast(nn.Module):
    """``model`` evaluated under ``precision``'s autocast in its memory layout, returning float32
    logits: the arithmetic the classifier trained in, applied to attribution."""

    def __init__(self, model: nn.Module, precision: Precision):
        super().__init__()
        self.model = precision.model(copy.deepcopy(model))
        self.precision = precision

    def forward(self, x: Tensor) -> Tensor:
        with self.precision.autocast():
            return self.model(self.precision.batch(x)).float()


def layer_scores(profiles: Sequence[MethodProfile]) -> np.ndarray:
    """Per tissue layer, the cohort mean of the method's layer score over ``profiles``."""
    field = "ablation_delta" if profiles[0].method == "layer_ablation" else "mean_saliency"
    table = np.array(
        [[np.nan if getattr(r, field) is None else getattr(r, field) for r in p.rows]
         for p in profiles],
        dtype=np.float64,
    )  # fmt: skip
    return np.nanmean(table, axis=0)


def order_changes(a: np.ndarray, b: np.ndarray) -> int:
    """Pairs of entries (finite in both) that ``a`` and ``b`` order differently (ties count as
    an order of their own)."""
    finite = [i for i in range(len(a)) if np.isfinite(a[i]) and np.isfinite(b[i])]
    return sum(np.sign(a[i] - a[j]) != np.sign(b[i] - b[j]) for i, j in combinations(finite, 2))


def map_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps; 1 when both are constant and equal, else 0 when one is
    constant."""
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def comparable(
    maps: dict[str, list[MethodProfile | None]],
) -> tuple[dict[str, list[MethodProfile | None]], int]:
    """The scans whose float32 map is finite (a scan without one has nothing to agree with; the
    platform quarantines it), and how many were left out."""
    kept = [i for i, profile in enumerate(maps["float32"]) if profile is not None]
    left_out = len(maps["float32"]) - len(kept)
    return {name: [profiles[i] for i in kept] for name, profiles in maps.items()}, left_out


def run(ctx: Context) -> list[Result]:
    methods = SaliencyResource().methods
    low = training_precision(ctx.device)
    if low.dtype is None:
        reason = f"{ctx.device.type} has no fast low-precision units: training runs in float32"
        return [
            row
            for cohort, mode in _conditions(ctx)
            for method in methods
            for row in _not_run(f"{BENCHMARK}/{cohort}/{mode}/{method}", method, reason)
        ]
    results: list[Result] = []
    for cohort, mode in _conditions(ctx):
        results += _run_mode(ctx, cohort, COHORTS[cohort], mode, methods, low)
    return results


def _not_run(prefix: str, method: str, reason: str) -> list[Result]:
    """The rows ``method`` reports (Integrated Gradients adds its completeness audit), each
    not run for ``reason``."""
    rows = _ROWS[: 3 if method == "integrated_gradients" else 2]
    return [
        not_run(BENCHMARK, f"{prefix}/{what}", unit=unit, target=target, reason=reason)
        for what, unit, target in rows
    ]


def _conditions(ctx: Context) -> tuple[tuple[str, str], ...]:
    """The (cohort kind, mode) pairs of this scale: all of them unless the scale names some."""
    every = tuple((cohort, mode) for cohort in COHORTS for mode in MODES)
    return ctx.scale.attribution_precision_conditions or every


def _run_mode(
    ctx: Context,
    cohort: str,
    effects: dict[str, float],
    mode: str,
    methods: Sequence[str],
    low: Precision,
) -> list[Result]:
    n, shape = ctx.scale.precision_subjects, ctx.scale.training_shape
    ctx.log(f"  {cohort}, {mode}: training a classifier on {n} subjects in {low.name}")
    simulated = SimulationConfig(n_subjects=n, seed=ctx.seed, **effects)
    development, _ = labelled_items(simulated, shape, mode)
    train, val = early_stopping_split(development)
    config = ClassifierConfig(device=ctx.device.type, seed=ctx.seed)
    if ctx.scale.precision_max_epochs is not None:
        config = replace(config, min_epochs=1, max_epochs=ctx.scale.precision_max_epochs)
    model = train_classifier(train, val, config).model.eval()
    external, labels = labelled_items(replace(simulated, seed=ctx.seed + 1), shape, mode)
    scans = [
        (torch.as_tensor(item.x[None], device=ctx.device), labels[item.scan_id])
        for item in external[: ctx.scale.attribution_precision_scans]
    ]
    networks = {"float32": model, low.name: Autocast(model, low).eval()}
    attribution = SaliencyResource().attribution_config(baseline="layer_mean")
    channels = no_signal_channels(mode)

    def explain(network: nn.Module, method: str) -> list[MethodProfile | None]:
        """Each scan's profile; None where the map is not finite (``aggregate_layers`` refuses
        it, and the platform quarantines the scan), in either precision."""
        target = last_conv_block(getattr(network, "model", network))
        profiles: list[MethodProfile | None] = []
        for x, y in scans:
            try:
                profiles.append(
                    profile_scan(network, x, y, [method], attribution, target_layer=target,
                                 no_signal_channels=channels)[method]
                )  # fmt: skip
            except NonFiniteMap:
                profiles.append(None)
        return profiles

    results = []
    for method in methods:
        ctx.log(f"  {cohort}, {mode}: {method} on {len(scans)} scans, float32 and {low.name}")
        maps = {name: explain(net, method) for name, net in networks.items()}
        timings = interleaved(
            {name: lambda n=net, m=method: explain(n, m) for name, net in networks.items()},
            ctx.scale.repeats,
            sync=ctx.sync,
            warmup=False,
        )
        seconds = {name: timings[name].best for name in networks}
        setting = (
            f"{cohort.replace('_', ' ')} ({simulated.bmode_effect_db:g} dB, "
            f"+{simulated.swe_effect:.0%} SWE): {mode} classifier trained on {len(train)} scans "
            f"in {low.name}; {len(scans)} external scans; float32 {fmt_s(seconds['float32'])}, "
            f"{low.name} {fmt_s(seconds[low.name])} for them (fastest of {ctx.scale.repeats} "
            f"rounds)."
        )
        prefix = f"{BENCHMARK}/{cohort}/{mode}/{method}"
        maps, left_out = comparable(maps)
        if left_out:
            setting += f" {left_out} scans left out: their float32 map is not finite."
        if not maps["float32"]:
            results += _not_run(prefix, method, f"no scan's float32 map is finite. {setting}")
            continue
        speedup = seconds["float32"] / seconds[low.name]
        results += _agreement_rows(prefix, setting, low.name, maps["float32"], maps[low.name],
                                   speedup)  # fmt: skip
        if method == "integrated_gradients":
            results.append(_completeness_row(prefix, setting, low.name, maps))
    return results


def _agreement_rows(
    prefix: str,
    setting: str,
    low: str,
    exact: list[MethodProfile],
    fast: list[MethodProfile | None],
    speedup: float,
) -> list[Result]:
    """The map-correlation and layer-order rows of one method (a non-finite low-precision map
    agrees with nothing: r = 0, and it leaves the layer order)."""
    pairs = list(zip(exact, fast, strict=True))
    rs = [0.0 if b is None else map_correlation(a.voxel_map, b.voxel_map) for a, b in pairs]
    both = [(a, b) for a, b in pairs if b is not None]
    changes = (
        order_changes(layer_scores([a for a, _ in both]), layer_scores([b for _, b in both]))
        if both
        else LAYER_PAIRS
    )
    return [
        measured(
            BENCHMARK,
            f"{prefix}/map_correlation",
            value=float(np.mean(rs)),
            unit="r",
            baseline=None,
            ratio=speedup,
            ratio_means=f"speed-up: float32 seconds / {low} seconds (no target)",
            target=AGREES,
            notes=f"{setting} Pearson r per scan: mean {np.mean(rs):.4f}, lowest {min(rs):.4f}; "
            f"{len(pairs) - len(both)} {low} maps not finite (r = 0).",
        ),
        measured(
            BENCHMARK,
            f"{prefix}/layer_order_changes",
            value=float(changes),
            unit="pairs",
            baseline=None,
            ratio=None,
            ratio_means="",
            target=NONE,
            notes=f"{setting} Layer pairs ordered differently by the cohort means of the "
            f"method's layer score, of {LAYER_PAIRS} (over the scans whose {low} map is "
            f"finite; all when none is).",
        ),
    ]


def _completeness_row(
    prefix: str, setting: str, low: str, maps: dict[str, list[MethodProfile | None]]
) -> Result:
    """Integrated Gradients' own audit: scans whose map misses ``f(x) - f(baseline)`` by more
    than the platform's tolerance (``SaliencyResource.completeness_tolerance``), in low
    precision beyond those in float32 (target 0 more)."""
    tolerance = SaliencyResource().completeness_tolerance

    def errors(profiles: list[MethodProfile | None]) -> list[float]:
        return [np.inf if p is None else p.diagnostics["completeness_error"] for p in profiles]

    exact, fast = errors(maps["float32"]), errors(maps[low])
    over = {name: sum(e > tolerance for e in values) for name, values in (("float32", exact),
                                                                          (low, fast))}  # fmt: skip
    return measured(
        BENCHMARK,
        f"{prefix}/completeness_failures_added",
        value=float(over[low] - over["float32"]),
        unit="scans",
        baseline=float(over["float32"]),
        ratio=None,
        ratio_means="",
        target=NONE,
        notes=f"{setting} Scans over the {tolerance:.0%} completeness tolerance: "
        f"{over[low]} in {low}, {over['float32']} in float32 (the baseline), of {len(exact)}; "
        f"median relative error {np.median(fast):.3f} vs {np.median(exact):.3f}.",
    )
