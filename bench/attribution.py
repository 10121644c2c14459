"""Benchmark 1: attribution efficiency of the platform's methods against floors and naive loops.

Per grid, on the platform's classifier (``SmallCNN3D`` as ``ClassifierConfig()`` builds it) and
one simulated, preprocessed scan:

* **Per-sample cost.** Forward+backward (gradient w.r.t. the input, as Integrated Gradients
  needs) and forward alone at each batch size of the grid's sweep, timed in the same rounds as
  the methods. The fastest per sample is the floor; the methods run at the batch size a short
  sweep before the rounds found fastest ("the best batch size").
* **Integrated Gradients** through ``layer_platform.attribution.attribute`` at that batch size
  vs its floor ``n_steps x per-sample forward+backward`` (target <= 1.25x) and vs a naive loop
  over the steps, one volume per forward+backward (target >= 3x faster). The loop computes the
  same attribution (checked).
* **Occlusion** (full-width, full-sweep depth bands about 2 mm deep, as the platform cuts them
  on its grids: ``occlusion_band``) with the bands batched vs one band per forward, and vs its
  floor ``(bands + 1) x per-sample forward``.
* **Layer ablation**: the original and six ablated copies, the six in one batch, vs seven
  sequential forward passes (``perturbations_per_eval=1``), and vs ``7 x per-sample forward``.
* **The network the methods run**: ``attribute`` explains ``inference_network(model)``, the
  classifier with its batch norms folded into the convolutions (the floors above are of that
  network too); its per-sample forward and forward+backward vs the classifier as trained, at the
  methods' batch sizes (target >= 1.2x faster: below that, copying the network per call would
  not pay).
* **The platform's own settings** (``SaliencyResource``: IG ``internal_batch_size`` and
  ``perturbations_per_eval``) vs the same floors, where the grid's memory allows.

Reference: ``layer_mean`` (the platform's default ``cohort`` reference costs the same: a fill
per layer). A missed target gets a torch.profiler summary.
"""

from __future__ import annotations

import cProfile
import io
import math
import pstats
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import Tensor, nn

from bench.core import Context, Result, Target, Timing, fmt_s, interleaved, measured, time_call
from bench.data import simulated_scans
from bench.scales import AttributionGrid
from layer_platform.attribution import (
    AttributionConfig,
    LogitFn,
    attribute,
    mp_logit,
    resolve_baseline,
)
from layer_platform.attribution.core import present_layers
from layer_platform.attribution.occlusion import depth_bands
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.inference import inference_network
from layer_platform.classification.network import build_classifier
from layer_platform.imaging.preprocess import PreprocessConfig

BENCHMARK = "attribution"
#: Reference of every method here.
BASELINE = "layer_mean"
#: Targets of the issue: batched time vs floor, and speed-up over the unbatched loop.
VS_FLOOR = Target("ratio", "<=", 1.25)
VS_NAIVE = Target("ratio", ">=", 3.0)
#: The folded network's forward pass vs the trained one's: what makes a copy per call pay.
FOLDED = Target("ratio", ">=", 1.2)
#: The channels-last network's forward pass vs the same network contiguous: what makes the
#: layout pay (oneDNN's 3D convolutions read channels-last without reordering).
CHANNELS_LAST = Target("ratio", ">=", 1.1)
#: Batched and naive results must agree to this relative error, or the comparison is void.
#: Integrated Gradients sums 16 float32 gradient maps whose batched kernels round differently:
#: on the CPU grid the two agree to 1.3e-3 of the map's largest value in float32 and to 3e-9 in
#: float64 (same model, scan and steps), so 1e-2 separates rounding from a different computation
#: (which differs by O(1)). Occlusion and ablation compare logit differences: 1e-3.
AGREEMENT = {"ig": 1e-2, "occlusion": 1e-3, "ablation": 1e-3}


def naive_integrated_gradients(
    forward: LogitFn, inputs: Tensor, labels: np.ndarray, config: AttributionConfig
) -> tuple[Tensor, Tensor]:
    """The baseline: a Python loop over the Gauss-Legendre steps, one volume per pass.

    Same reference, nodes, weights and end-point logits as the platform's Integrated
    Gradients; returns the channel-summed map ``(L, D, S)`` and ``(f(x), f(reference))``.
    """
    reference = resolve_baseline(None, inputs, labels, config)
    step_sizes, alphas = approximation_parameters("gausslegendre")
    total = torch.zeros_like(inputs)
    for alpha, weight in zip(alphas(config.ig_steps), step_sizes(config.ig_steps), strict=True):
        point = (reference + alpha * (inputs - reference)).requires_grad_()
        (grad,) = torch.autograd.grad(forward(point).sum(), point)
        total += weight * grad
    with torch.no_grad():
        logits = forward(torch.cat([inputs, reference]))
    return (total * (inputs - reference))[0].sum(dim=0), logits


def _per_sample(
    forward: LogitFn, inputs: Tensor, batch: int, *, backward: bool
) -> Callable[[], object]:
    """One pass over ``batch`` copies of the scan (with the input gradient if ``backward``)."""
    copies = inputs.expand(batch, *inputs.shape[1:]).clone()

    def run() -> object:
        if not backward:
            with torch.no_grad():
                return forward(copies)
        points = copies.detach().requires_grad_()
        return torch.autograd.grad(forward(points).sum(), points)

    return run


def _sweep(
    ctx: Context, forward: LogitFn, inputs: Tensor, grid: AttributionGrid, *, backward: bool
) -> tuple[int, dict[int, float]]:
    """Per-sample seconds at each batch size; returns (best batch size, {batch: seconds})."""
    calls = {b: _per_sample(forward, inputs, b, backward=backward) for b in grid.batch_sizes}
    timings = interleaved(calls, 1, sync=ctx.sync)
    per_sample = {b: timings[b].best / b for b in grid.batch_sizes}
    return min(per_sample, key=per_sample.__getitem__), per_sample


def _network_row(
    grid: AttributionGrid,
    t: dict[str, Timing],
    best_fwd: int,
    best_grad: int,
    name: str,
    other: str,
    target: Target,
    what: str,
) -> Result:
    """The network attribution runs on (``inference_network``) vs ``other``'s per-sample passes
    (timings ``fwd_<other>``, ``grad_<other>``), both at the batch sizes the methods' passes run
    at: the forward pass is the row, forward+backward (input gradient) is in the notes."""
    ours, theirs = t[f"fwd{best_fwd}"].best / best_fwd, t[f"fwd_{other}"].best / best_fwd
    grad_ours = t[f"grad{best_grad}"].best / best_grad
    grad_theirs = t[f"grad_{other}"].best / best_grad
    return measured(
        BENCHMARK,
        f"{BENCHMARK}/{grid.label}/{name}",
        value=ours,
        unit="s",
        baseline=theirs,
        ratio=theirs / ours,
        ratio_means="baseline / value (speed-up of a forward pass)",
        target=target,
        notes=(
            f"Per-sample forward at batch {best_fwd}: {fmt_s(ours)} on inference_network's "
            f"network (what attribute runs: batch norms folded, channels-last) vs "
            f"{fmt_s(theirs)} {what}; forward+backward (input gradient) at batch {best_grad}: "
            f"{fmt_s(grad_ours)} vs {fmt_s(grad_theirs)} ({grad_theirs / grad_ours:.2f}x)."
        ),
    )


def _max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.abs(b).max()) or 1.0
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()) / scale


def _sweep_note(per_sample: dict[int, float]) -> str:
    return ", ".join(f"{b}: {fmt_s(s)}" for b, s in per_sample.items())


def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for grid in ctx.scale.attribution_grids:
        results += _run_grid(ctx, grid)
    return results


def platform_batches(device: torch.device) -> tuple[int, int]:
    """The platform's IG ``internal_batch_size`` and ``perturbations_per_eval`` on ``device``."""
    from layer_platform.defs.saliency_resource import SaliencyResource

    return SaliencyResource().batch_sizes(device)


def occlusion_band(shape: tuple[int, int, int]) -> int:
    """The depth in voxels of the platform's occlusion bands (``depth_bands``) on a grid of
    ``shape`` over the CPU preset's field of view: 8 on the CPU grid, 22 on the GPU grid, as
    ``SaliencyResource.for_grid`` cuts them."""
    cpu = PreprocessConfig.cpu()
    fov = [n * mm for n, mm in zip(cpu.target_shape, cpu.target_spacing, strict=True)]
    spacing = tuple(mm / n for mm, n in zip(fov, shape, strict=True))
    return depth_bands(shape, spacing)[1]


def _run_grid(ctx: Context, grid: AttributionGrid) -> list[Result]:
    ctx.log(f"  attribution at {grid.label}")
    scan = simulated_scans(grid.shape, 1, ctx.seed)[0]
    torch.manual_seed(ctx.seed)
    model = build_classifier(ClassifierConfig(), in_channels=1).to(ctx.device).eval()
    inputs = torch.from_numpy(scan.bmode)[None, None].to(ctx.device)
    labels = scan.layers
    # The saliency stage folds each champion once (``load_champions``) and attributes on the
    # folded network, which ``attribute`` then uses as it is: the methods are timed on it too,
    # not on a copy folded per call (10 ms on the 2-core CPU, 34 ms on one H200's host).
    network = inference_network(model)
    forward = mp_logit(network)
    trained = mp_logit(model)
    contiguous = mp_logit(inference_network(model).to(memory_format=torch.contiguous_format))
    lateral, depth, sweep = grid.shape
    band = occlusion_band(grid.shape)
    n_bands = (depth - band) // band + 1
    n_layers = len(present_layers(labels))
    steps = ctx.scale.ig_steps
    platform_ig, platform_perturbations = platform_batches(ctx.device)

    # One untimed-for-the-report round picks the batch sizes the methods run with.
    best_grad, _ = _sweep(ctx, forward, inputs, grid, backward=True)
    best_fwd, _ = _sweep(ctx, forward, inputs, grid, backward=False)

    def config(batch: int = 1, perturbations: int = 1) -> AttributionConfig:
        # Layer ablation's 7 passes only: its extra passes (boundary masks, the joint
        # non-muscle fill) are more samples of the same kind, not part of the 7-pass floor.
        return AttributionConfig(
            baseline=BASELINE,
            ig_steps=steps,
            internal_batch_size=batch,
            occlusion_window=(lateral, band, sweep),
            occlusion_stride=(lateral, band, sweep),
            perturbations_per_eval=perturbations,
            ablation_extras=False,
        )

    outputs: dict[str, object] = {}

    def method(name: str, cfg: AttributionConfig, keep: str | None = None):
        def call() -> object:
            result = attribute(name, network, inputs, layers_map=labels, config=cfg)
            if keep:
                outputs[keep] = result
            return result

        return call

    def naive() -> object:
        outputs["ig_naive"] = naive_integrated_gradients(forward, inputs, labels, config())
        return outputs["ig_naive"]

    calls: dict[str, Callable[[], object]] = {}
    for b in grid.batch_sizes:  # the floors: every batch size, in every round
        calls[f"grad{b}"] = _per_sample(forward, inputs, b, backward=True)
        calls[f"fwd{b}"] = _per_sample(forward, inputs, b, backward=False)
    calls["fwd_trained"] = _per_sample(trained, inputs, best_fwd, backward=False)
    calls["grad_trained"] = _per_sample(trained, inputs, best_grad, backward=True)
    calls["fwd_contiguous"] = _per_sample(contiguous, inputs, best_fwd, backward=False)
    calls["grad_contiguous"] = _per_sample(contiguous, inputs, best_grad, backward=True)
    calls |= {
        "ig": method("integrated_gradients", config(batch=best_grad), keep="ig"),
        "ig_naive": naive,
        "occlusion": method("occlusion", config(perturbations=best_fwd), keep="occlusion"),
        "occlusion_one": method("occlusion", config(perturbations=1), keep="occlusion_one"),
        "ablation": method("layer_ablation", config(perturbations=n_layers), keep="ablation"),
        "ablation_seq": method("layer_ablation", config(perturbations=1), keep="ablation_seq"),
    }
    if grid.platform_setting:
        calls["ig_platform"] = method("integrated_gradients", config(batch=min(platform_ig, steps)))
        calls["occlusion_platform"] = method(
            "occlusion", config(perturbations=min(platform_perturbations, n_bands))
        )
    t = interleaved(calls, grid.repeats or ctx.scale.repeats, sync=ctx.sync, warmup=grid.warmup)
    agreement = _agreement(outputs)
    calls.clear()
    outputs.clear()

    grad_sample = {b: t[f"grad{b}"].best / b for b in grid.batch_sizes}
    fwd_sample = {b: t[f"fwd{b}"].best / b for b in grid.batch_sizes}
    grad_floor = steps * min(grad_sample.values())
    fwd_floor = min(fwd_sample.values())
    occ_floor = (n_bands + 1) * fwd_floor
    abl_floor = (n_layers + 1) * fwd_floor
    floor_note = (
        f"Per-sample forward+backward by batch size: {_sweep_note(grad_sample)}; forward: "
        f"{_sweep_note(fwd_sample)} (the methods' batch sizes were picked by a sweep before the "
        f"timed rounds)."
    )

    def med(name: str) -> str:
        return f"median {fmt_s(t[name].median)}"

    def vs_floor(name: str, key: str, floor: float, what: str, notes: str) -> Result:
        return measured(
            BENCHMARK,
            f"{BENCHMARK}/{grid.label}/{name}",
            value=t[key].best,
            unit="s",
            baseline=floor,
            ratio=t[key].best / floor,
            ratio_means=f"value / baseline ({what} time over its floor)",
            target=VS_FLOOR,
            notes=f"{notes} {med(key)}.",
        )

    def speed_up(name: str, key: str, base: str, what: str, notes: str) -> Result:
        return measured(
            BENCHMARK,
            f"{BENCHMARK}/{grid.label}/{name}",
            value=t[key].best,
            unit="s",
            baseline=t[base].best,
            ratio=t[base].best / t[key].best,
            ratio_means=f"baseline / value (speed-up over {what})",
            target=VS_NAIVE,
            notes=f"{notes}; baseline {med(base)}, batched {med(key)}.",
        )

    ig_floor_note = f"floor = {steps} x the fastest per-sample forward+backward."
    occ_floor_note = f"floor = {n_bands + 1} x the fastest per-sample forward."
    rows = [
        vs_floor(
            "ig_vs_floor",
            "ig",
            grad_floor,
            "IG",
            f"Integrated Gradients, {steps} Gauss-Legendre steps, internal_batch_size="
            f"{best_grad}; {ig_floor_note} {floor_note} Includes building the reference and the "
            f"end-point logits the platform records.",
        ),
        speed_up(
            "ig_vs_naive_loop",
            "ig",
            "ig_naive",
            "the naive loop",
            f"Baseline: a Python loop over the {steps} steps, one volume per forward+backward; "
            f"same attribution (max relative difference {agreement['ig']:.1e})",
        ),
        vs_floor(
            "occlusion_vs_floor",
            "occlusion",
            occ_floor,
            "occlusion",
            f"{n_bands} bands of {lateral}x{band}x{sweep} voxels, perturbations_per_eval="
            f"{best_fwd}; {occ_floor_note} Per-sample costs: see ig_vs_floor.",
        ),
        speed_up(
            "occlusion_vs_one_window",
            "occlusion",
            "occlusion_one",
            "one band per forward",
            f"Baseline: the same captum Occlusion with perturbations_per_eval=1; same map (max "
            f"difference {agreement['occlusion']:.1e} of the logit)",
        ),
        vs_floor(
            "ablation_vs_floor",
            "ablation",
            abl_floor,
            "ablation",
            f"Layer ablation: the original and {n_layers} ablated copies, the {n_layers} in one "
            f"batch (perturbations_per_eval={n_layers}, what the platform's "
            f"{platform_perturbations} amounts to); floor = {n_layers + 1} x the fastest "
            f"per-sample forward.",
        ),
        speed_up(
            "ablation_vs_sequential",
            "ablation",
            "ablation_seq",
            "sequential passes",
            f"Baseline: {n_layers + 1} sequential forward passes (perturbations_per_eval=1); same "
            f"layer deltas (max difference {agreement['ablation']:.1e} of the logit)",
        ),
        _network_row(
            grid,
            t,
            best_fwd,
            best_grad,
            "folded_network_vs_trained",
            "trained",
            FOLDED,
            "for the classifier as trained, in eval mode",
        ),
        _network_row(
            grid,
            t,
            best_fwd,
            best_grad,
            "channels_last_vs_contiguous",
            "contiguous",
            CHANNELS_LAST,
            "for the same network contiguous",
        ),
    ]
    if grid.platform_setting:
        rows += [
            vs_floor(
                "ig_platform_batch_vs_floor",
                "ig_platform",
                grad_floor,
                "IG",
                f"Integrated Gradients as SaliencyResource configures it: internal_batch_size="
                f"{platform_ig} ({min(platform_ig, steps)} of the {steps} steps per pass); "
                f"{ig_floor_note}",
            ),
            vs_floor(
                "occlusion_platform_batch_vs_floor",
                "occlusion_platform",
                occ_floor,
                "occlusion",
                f"Occlusion as SaliencyResource configures it: perturbations_per_eval="
                f"{platform_perturbations} ({min(platform_perturbations, n_bands)} of the "
                f"{n_bands} bands per pass); {occ_floor_note}",
            ),
        ]
    why = _why(
        grad_sample,
        fwd_sample,
        n_layers=n_layers,
        platform=(min(platform_ig, steps), min(platform_perturbations, n_bands)),
    )
    # What a method's passes cost at its batch size in these rounds, beside the floor (the
    # fastest batch size's): a miss is then either the batch picked before the rounds, or time
    # beyond the passes.
    picks = {
        "ig_vs_floor": (best_grad, grad_sample, steps, 2 * fwd_floor),
        "occlusion_vs_floor": (best_fwd, fwd_sample, n_bands + 1, 0.0),
    }
    for r in rows:
        short = r.name.rsplit("/", 1)[-1]
        if not r.met and short in picks and r.value is not None and r.baseline is not None:
            batch, sample, passes, ends = picks[short]
            fastest = min(sample, key=sample.__getitem__)
            at_batch = passes * sample[batch]
            ran = (
                f"it ran at batch {batch} (the sweep before the rounds picked it), whose passes "
                f"cost {fmt_s(at_batch)} in these rounds against the floor's "
                f"{fmt_s(r.baseline)} at batch {fastest}; "
                if batch != fastest
                else f"it runs the floor's own passes (batch {batch}); "
            )
            why[short] = (
                f"{ran}end-point forward passes add {fmt_s(ends)}; the remaining "
                f"{fmt_s(r.value - at_batch - ends)} is time in the same kernels (the profile's "
                "convolution share and GFLOP/s beside a plain matmul's), not extra work: each "
                "call's fastest round is compared, and on a CPU shared with other work (load "
                "average in the machine facts) those rounds drift apart by more than the margin."
            )
        reason = why.get(short)
        if not r.met and reason:
            r.notes += f" Why: {reason}"
    if not all(r.met for r in rows):
        path = ctx.profile_path(f"attribution_{grid.label}.txt")
        _profile(
            ctx,
            path,
            network,
            inputs,
            labels,
            config,
            best_grad,
            best_fwd,
            steps,
            (n_bands, n_layers),
            grid,
        )
        for r in rows:
            if not r.met:
                r.profile = ctx.relative(path)
    return rows


def _nearest(sample: dict[int, float], batch: int) -> int:
    """The measured batch size closest to ``batch`` from above (the largest if none is)."""
    above = [b for b in sample if b >= batch]
    return min(above) if above else max(sample)


def _why(
    grad_sample: dict[int, float],
    fwd_sample: dict[int, float],
    *,
    n_layers: int,
    platform: tuple[int, int],
) -> dict[str, str]:
    """Why a target is missed, from the per-sample costs of this run (by row name)."""

    def best(sample: dict[int, float]) -> int:
        return min(sample, key=sample.__getitem__)

    def single(sample: dict[int, float], what: str) -> str | None:
        b, gain = best(sample), sample[min(sample)] / sample[best(sample)]
        if gain >= VS_NAIVE.bound:
            return None
        return (
            f"one volume per pass already costs only {gain:.2f}x the best per-sample {what} "
            f"(batch {b}) on this device, so no batching can make it 3x faster; the target "
            "presumes a per-sample cost that falls steeply with the batch size, as on a GPU "
            "(the paper scale)."
        )

    def big(sample: dict[int, float], copies: int, what: str, knob: str) -> str | None:
        b, k = best(sample), _nearest(sample, copies)
        if k <= b or sample[k] < 1.1 * sample[b]:
            return None
        return (
            f"passes of {copies} copies: the per-sample {what} at batch {k} costs "
            f"{sample[k] / sample[b]:.1f}x the best batch ({b}); bigger batches fall out of the "
            f"CPU's caches (see the profile's GFLOP/s). On a CPU, {knob} = {b} is the measured "
            "best."
        )

    generic = "see the profile for where the time beyond the passes goes."
    reasons = {
        "ig_vs_naive_loop": single(grad_sample, "forward+backward"),
        "occlusion_vs_one_window": single(fwd_sample, "forward"),
        "ablation_vs_sequential": single(fwd_sample, "forward"),
        "ablation_vs_floor": big(fwd_sample, n_layers, "forward", "perturbations_per_eval"),
        "ig_platform_batch_vs_floor": big(
            grad_sample, platform[0], "forward+backward", "SaliencyResource.internal_batch_size"
        ),
        "occlusion_platform_batch_vs_floor": big(
            fwd_sample, platform[1], "forward", "SaliencyResource.perturbations_per_eval"
        ),
    }
    return {name: reason or generic for name, reason in reasons.items()} | {
        "ig_vs_floor": generic,
        "occlusion_vs_floor": generic,
    }


def _agreement(outputs: dict[str, object]) -> dict[str, float]:
    """How far each batched method is from its baseline; raises if they compute different things.

    IG maps are compared relative to the map's largest value. Occlusion and ablation values are
    differences of two logits, so float32 rounding of the logits (batch-size dependent kernels)
    is compared relative to the logit itself.
    """
    ig = outputs["ig"]
    naive_map, naive_logits = outputs["ig_naive"]
    logit = max(abs(ig.extras["logit"]), 1e-6)

    def deltas(name: str) -> np.ndarray:
        return np.array(list(outputs[name].extras["layer_deltas"].values()))

    diffs = {
        "ig": max(
            _max_rel_diff(ig.map, naive_map.detach().cpu().numpy()),
            abs(ig.extras["logit"] - float(naive_logits[0])) / logit,
        ),
        "occlusion": float(np.abs(outputs["occlusion"].map - outputs["occlusion_one"].map).max())
        / logit,
        "ablation": float(np.nanmax(np.abs(deltas("ablation") - deltas("ablation_seq")))) / logit,
    }
    broken = {k: v for k, v in diffs.items() if not v <= AGREEMENT[k]}
    if broken:
        raise RuntimeError(
            f"batched and baseline attributions disagree (relative differences {broken}): "
            "the comparison would be meaningless"
        )
    return diffs


def _matmul_rate(ctx: Context) -> float:
    """GFLOP/s of a 2048 x 2048 float32 matmul on this device and thread count (best of 3)."""
    a = torch.randn(2048, 2048, device=ctx.device)
    a @ a
    seconds = min(time_call(lambda: a @ a, ctx.sync) for _ in range(3))
    return 2 * 2048**3 / seconds / 1e9


def conv_flops(model: nn.Module, inputs: Tensor) -> float:
    """Multiply-add FLOPs (x2) of the model's 3D convolutions for one forward pass of ``inputs``."""
    total = [0.0]

    def count(module: nn.Conv3d, _inputs: tuple, output: Tensor) -> None:
        per_voxel = 2 * module.in_channels // module.groups * math.prod(module.kernel_size)
        total[0] += per_voxel * output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv3d)]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return total[0]


def _python_profile(fn: Callable[[], object], sync: Callable[[], None]) -> str:
    """The 20 Python calls of ``fn`` with the most cumulative time (``cProfile``)."""
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    sync()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("cumulative").print_stats(20)
    return text.getvalue().strip()


def _profile(
    ctx: Context,
    path: Path,
    model: nn.Module,
    inputs: Tensor,
    labels: np.ndarray,
    config: Callable[..., AttributionConfig],
    best_grad: int,
    best_fwd: int,
    steps: int,
    counts: tuple[int, int],
    grid: AttributionGrid,
) -> None:
    """torch.profiler summaries of the batched calls and their baselines, one section each.

    The convolution rate counts each forward pass as the convolutions' FLOPs and each
    input-gradient pass as as many again (the data gradient; no weight gradients are needed).
    Layer ablation is profiled as timed and with the extras the platform computes (boundary
    masks, the joint fill), whose host-side work (masks, fills) a GPU does not hide: on CUDA
    each section also lists the ops by CPU time, and the ablation with extras gets a cProfile
    of its Python calls.
    """
    from torch.profiler import ProfilerActivity, profile

    n_bands, n_layers = counts
    with_extras = replace(config(perturbations=n_layers), ablation_extras=True)

    forward = mp_logit(model)
    ig_passes = 2 * steps + 2  # forward + input gradient per step, and the two end points

    def run(name: str, cfg: AttributionConfig) -> Callable[[], object]:
        return lambda: attribute(name, model, inputs, layers_map=labels, config=cfg)

    runs: dict[str, tuple[Callable[[], object], int]] = {
        f"integrated_gradients, internal_batch_size={best_grad}": (
            run("integrated_gradients", config(best_grad)),
            ig_passes,
        ),
        "naive IG loop (one volume per pass)": (
            lambda: naive_integrated_gradients(forward, inputs, labels, config()),
            ig_passes,
        ),
        f"occlusion, perturbations_per_eval={best_fwd}": (
            run("occlusion", config(perturbations=best_fwd)),
            n_bands + 1,
        ),
        "occlusion, perturbations_per_eval=1": (
            run("occlusion", config(perturbations=1)),
            n_bands + 1,
        ),
        f"layer_ablation, perturbations_per_eval={n_layers}": (
            run("layer_ablation", config(perturbations=n_layers)),
            n_layers + 1,
        ),
        "layer_ablation with the platform's extras (boundary masks, joint fill)": (
            run("layer_ablation", with_extras),
            n_layers + 1 + 1 + 2 * n_layers,
        ),
    }
    if grid.platform_setting:
        runs[f"integrated_gradients, all {steps} steps in one batch"] = (
            run("integrated_gradients", config(steps)),
            ig_passes,
        )
    flops = conv_flops(model, inputs)
    reference_rate = _matmul_rate(ctx)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ctx.on_cuda else [])
    sort = "self_cuda_time_total" if ctx.on_cuda else "self_cpu_time_total"
    lines = [
        f"# torch.profiler: attribution at {grid.label} on {ctx.device} with "
        f"{ctx.threads or torch.get_num_threads()} CPU thread(s)",
        "",
        f"One forward pass of the classifier costs {flops / 1e9:.2f} GFLOP in 3D convolutions;",
        f"for scale, a 2048 x 2048 float32 matmul runs at {reference_rate:.0f} GFLOP/s here.",
        "Per run: wall time, the share of self CPU time in convolution kernels, and the",
        "convolution rate (passes x that cost / wall time).",
        "",
    ]
    for title, (fn, passes) in runs.items():  # already warm: they ran in the timed rounds
        with profile(activities=activities) as prof:
            wall = time_call(fn, ctx.sync)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events) or 1
        conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key.lower())
        lines += [
            f"## {title}",
            f"wall {fmt_s(wall)}; convolution kernels {100 * conv / total:.0f}% of self CPU "
            f"time; {passes * flops / wall / 1e9:.1f} GFLOP/s in convolutions",
            "",
            "```",
            events.table(sort_by=sort, row_limit=15),
            "```",
            "",
        ]
        if ctx.on_cuda:
            lines += [
                "By self CPU time (host work between kernels):",
                "```",
                events.table(sort_by="self_cpu_time_total", row_limit=10),
                "```",
                "",
            ]
    lines += [
        "## Python calls of layer ablation with extras (cProfile, cumulative)",
        "```",
        _python_profile(run("layer_ablation", with_extras), ctx.sync),
        "```",
    ]
    path.write_text("\n".join(lines))
    ctx.log(f"    profile → {path}")
