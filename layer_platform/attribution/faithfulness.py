"""Faithfulness of a method's layer order: does removing its top layers first hurt the model more
than removing layers in a random order?

A method ranks a scan's present tissue layers (its ``layer_saliency`` scores: the signed
``ablation_delta`` of the layer-value methods turned toward the predicted class, the unsigned
``mean_saliency`` of the voxel maps). The **layer-deletion curve** is the model's probability
of the class it predicted for the intact scan after the top ``k`` layers are removed together,
``k = 0 .. n`` over the ``n`` present layers; the random curve is its mean over seeded random
orders (the same orders for every method, so methods are compared on equal terms). The score
is the **area between** the two curves over the fraction of layers removed (``k / n``, trapezoid
rule): ``> 0`` when the method's order removes the model's evidence faster than chance, ``< 0``
when slower. Probabilities and a 0..1 axis bound it to ``[-1, 1]`` whatever the scan's number
of layers or the logit's scale, so areas are comparable across scans and methods.

Two removals (``VARIANTS``):

* ``deletion``: a removed layer takes the scan's frozen reference, exactly as layer ablation
  removes it (``ablation.layer_fill``). Layer ablation's own order is read off single-layer
  removals with this fill, so its first step is the best one by construction: compare it with
  the other methods under ``road`` too.
* ``road``: ROAD's noisy linear imputation (Rong et al. 2022) in 3D, no retraining: each removed
  voxel is interpolated linearly along depth between the nearest kept voxels above and below
  in its (lateral, sweep) column (constant past the last kept voxel; the channel's kept mean in
  a column with none), plus Gaussian noise of ``road_noise`` times the channel's SD over kept
  voxels. Layers are stacked along depth, so depth is where a removed voxel's kept neighbours
  are; the fill carries no trace of the removed layer's own values. In encoded-SWE channels
  unmeasured voxels (exactly 0) stay 0 and only measured voxels are interpolated from.

Every coalition (set of removed layers) any order reaches is evaluated once, the intact scan
with them, ``batch`` copies per forward pass (``ablation.masked_logits``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from layer_platform.attribution.ablation import masked_logits
from layer_platform.attribution.core import LogitFn, check_label_map, present_layers
from layer_platform.labels import Layer
from layer_platform.saliency_names import LAYER_VALUE_METHODS

#: How a removed layer is filled: the frozen reference, or ROAD's noisy linear imputation.
VARIANTS: tuple[str, ...] = ("deletion", "road")


@dataclass(frozen=True)
class FaithfulnessSettings:
    """Random orders per scan, their seed (also the ROAD noise's), ROAD's relative noise, and
    perturbed copies per forward pass."""

    n_random_orders: int = 4
    seed: int = 0
    road_noise: float = 0.01
    batch: int = 6

    def protocol(self) -> str:
        """The settings an area depends on, as one readable string (stored with the rows)."""
        return (
            f"layer-deletion-v1 random_orders={self.n_random_orders} seed={self.seed}"
            f" road_noise={self.road_noise}"
        )


@dataclass(frozen=True)
class Faithfulness:
    """One method's result on one scan under one removal: the area between the random and the
    method's deletion curves, and both curves (``n + 1`` points, predicted-class probability)."""

    method: str
    variant: str
    area: float
    curve: np.ndarray
    random_curve: np.ndarray


def layer_order(
    scores: Mapping[str, float], present: Sequence[Layer], method: str, predicted: float
) -> list[Layer] | None:
    """``present`` layers from most to least important for the predicted class (``predicted``
    is +1 for MP, -1 for control): signed layer values are turned toward it, unsigned map
    scores are taken as they are. A layer without a finite score goes last (no measured
    evidence); None when no layer has one."""
    sign = predicted if method in LAYER_VALUE_METHODS else 1.0
    value = {layer: sign * float(scores.get(layer.key, np.nan)) for layer in present}
    if not any(np.isfinite(v) for v in value.values()):
        return None
    return sorted(present, key=lambda layer: -value[layer] if np.isfinite(value[layer]) else np.inf)


def area_between(curve: np.ndarray, random_curve: np.ndarray) -> float:
    """``integral of (random - curve)`` over the fraction of layers removed, trapezoid rule."""
    gap = np.asarray(random_curve, float) - np.asarray(curve, float)
    return float(((gap[1:] + gap[:-1]) / 2).sum() / (len(gap) - 1))


def road_impute(
    x: np.ndarray,
    removed: np.ndarray,
    rng: np.random.Generator,
    *,
    noise: float = 0.01,
    no_signal_channels: Sequence[int] = (),
) -> np.ndarray:
    """``x`` ``(C, L, D, S)`` with the ``removed`` voxels ``(L, D, S)`` imputed (see the module);
    every other voxel is returned unchanged."""
    out = np.array(x, dtype=np.float32, copy=True)
    for c, channel in enumerate(out):
        known = ~removed
        target = removed.copy()
        if c in no_signal_channels:
            known &= channel != 0
            target &= channel != 0
        if not target.any():
            continue
        fallback = float(channel[known].mean()) if known.any() else 0.0
        filled = _depth_interpolation(channel, known)
        filled = np.where(np.isnan(filled), fallback, filled)
        scale = float(channel[known].std()) if known.any() else 0.0
        filled = filled + rng.normal(0.0, noise * scale, size=filled.shape)
        if c in no_signal_channels:
            filled = np.maximum(filled, 0.0)
        channel[target] = filled[target]
    return out


def _depth_interpolation(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Each voxel interpolated linearly along depth (axis 1) between the nearest ``known``
    voxels above and below it; the nearest one where only one side has one, NaN where the
    column has none. Known voxels keep their values."""
    n = values.shape[1]
    depth = np.broadcast_to(np.arange(n)[None, :, None], values.shape)
    above = np.maximum.accumulate(np.where(known, depth, -1), axis=1)
    below = np.flip(np.minimum.accumulate(np.flip(np.where(known, depth, n), 1), axis=1), 1)
    has_above, has_below = above >= 0, below < n
    upper = np.take_along_axis(values, np.clip(above, 0, n - 1), axis=1).astype(np.float64)
    lower = np.take_along_axis(values, np.clip(below, 0, n - 1), axis=1).astype(np.float64)
    weight = (depth - above) / np.maximum(below - above, 1)
    between = upper + weight * (lower - upper)
    return np.where(
        has_above & has_below,
        between,
        np.where(has_above, upper, np.where(has_below, lower, np.nan)),
    )


#: Turns a batch of removal masks ``(n, L, D, S)`` into the inputs ``(n, C, L, D, S)``.
Remover = Callable[[Tensor], Tensor]


def reference_remover(inputs: Tensor, fill: Tensor) -> Remover:
    """Removed voxels take ``fill`` in every channel (layer ablation's removal)."""
    return lambda masks: torch.where(masks[:, None], fill, inputs)


def road_remover(
    inputs: Tensor, rng: np.random.Generator, noise: float, no_signal_channels: Sequence[int]
) -> Remover:
    """Removed voxels imputed by ``road_impute`` (on the host, one copy at a time)."""
    x = inputs[0].detach().cpu().numpy()

    def remove(masks: Tensor) -> Tensor:
        copies = [
            road_impute(x, m, rng, noise=noise, no_signal_channels=no_signal_channels)
            for m in masks.cpu().numpy()
        ]
        return torch.as_tensor(np.stack(copies), dtype=inputs.dtype, device=inputs.device)

    return remove


def scan_faithfulness(
    forward: LogitFn,
    inputs: Tensor,
    labels: np.ndarray,
    fill: Tensor,
    scores: Mapping[str, Mapping[str, float]],
    settings: FaithfulnessSettings | None = None,
    *,
    no_signal_channels: Sequence[int] = (),
) -> list[Faithfulness]:
    """Every method's area under each removal for one scan ``(1, C, L, D, S)``.

    Args:
        forward: the model's MP logit (``core.mp_logit``).
        labels: the scan's label map ``(L, D, S)``.
        fill: the reference volume layer ablation removes a layer with (``ablation.layer_fill``).
        scores: per method, layer key to the scan's score for that layer (``layer_saliency``'s
            ``score_column``); a method with no finite score is left out.
        no_signal_channels: encoded-SWE channels (``classification.modes.no_signal_channels``).
    """
    settings = settings or FaithfulnessSettings()
    labels = check_label_map(labels, tuple(inputs.shape[2:]))
    present = present_layers(labels)
    if len(present) < 2:
        return []  # one layer has a single order: nothing to compare
    rng = np.random.default_rng(settings.seed)
    randoms = [
        [present[i] for i in rng.permutation(len(present))] for _ in range(settings.n_random_orders)
    ]
    with torch.no_grad():
        predicted = 1.0 if float(forward(inputs)[0]) >= 0 else -1.0
    orders = {
        method: order
        for method, found in scores.items()
        if (order := layer_order(found, present, method, predicted)) is not None
    }
    if not orders or not randoms:
        return []
    every = [*orders.values(), *randoms]
    coalitions = sorted({frozenset(o[:k]) for o in every for k in range(len(o) + 1)}, key=sorted)
    tissue = torch.as_tensor(labels, device=inputs.device)
    masks = [
        torch.isin(tissue, torch.tensor(sorted(s), dtype=tissue.dtype, device=tissue.device))
        for s in coalitions
    ]
    removers = {
        "deletion": reference_remover(inputs, fill),
        "road": road_remover(inputs, rng, settings.road_noise, no_signal_channels),
    }
    results = []
    for variant in VARIANTS:
        logits = masked_logits(forward, masks, removers[variant], max(1, settings.batch))
        probability = dict(zip(coalitions, torch.sigmoid(predicted * logits).numpy(), strict=True))

        def curve(order: list[Layer], probability=probability) -> np.ndarray:
            return np.array([probability[frozenset(order[:k])] for k in range(len(order) + 1)])

        random_curve = np.mean([curve(o) for o in randoms], axis=0)
        for method, order in orders.items():
            found = curve(order)
            area = area_between(found, random_curve)
            results.append(Faithfulness(method, variant, area, found, random_curve))
    return results
