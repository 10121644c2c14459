"""The one call shape every attribution method shares, and the checks every method relies on.

A method takes the model's MP-logit function and one scan ``(1, C, L, D, S)`` and returns an
``AttributionResult`` whose map is on the scan's voxel grid ``(L, D, S)``: channels are reduced
by the method (see ``AttributionResult``) so that every map can be summed inside the same
six-layer label map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from layer_platform.errors import ScanError
from layer_platform.labels import MAX_LABEL, TISSUE_LAYERS, Layer

#: The model reduced to what attribution explains: a batch ``(N, C, L, D, S)`` to N MP logits.
LogitFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True, eq=False)
class AttributionConfig:
    """Settings for all methods; each method reads only the fields it needs.

    Args:
        baseline: the reference a scan is compared with by Integrated Gradients, occlusion and
            layer ablation (see ``baselines.BASELINE_KINDS``). The default, ``"layer_mean"``,
            keeps the anatomy and removes only texture inside each layer, so no layer is
            favoured merely by contrasting with a black or grey reference.
        blur_sigma: Gaussian sigma in voxels of the ``"blur"`` baseline; large on purpose, so
            texture and thin membranes vanish.
        cohort_fill: fill of the ``"cohort"`` baseline: a per-layer, per-channel table
            ``(6, C)`` (rows dermis..muscle, e.g. the control-class mean) or a texture volume
            ``(C, L, D, S)`` already on the scan's grid.
        ig_steps: Integrated Gradients integration steps.
        internal_batch_size: Integrated Gradients steps evaluated per forward pass (memory cap).
        occlusion_window: occluding box in voxels (lateral, depth, sweep), clipped to the scan.
        occlusion_stride: step of the occluding box in voxels.
        perturbations_per_eval: perturbed copies per forward pass for occlusion and ablation;
            the default 6 evaluates all six layer ablations in one batch.
        gradcam_interpolation: ``torch.nn.functional.interpolate`` mode that brings the coarse
            Grad-CAM map up to the input grid.
        cohort_matching: how a ``cohort`` reference table becomes a scan's fill volume
            (``scan_profile.REFERENCE_MATCHINGS``: ``flat`` or ``mean_shift``).
        ablation_extras: layer ablation also replaces all non-muscle tissue at once and, with
            several channels, each (layer, channel) pair (the paper's comparison and the
            modality split: up to twice its passes in ``bmode_swe``), and each layer eroded and
            dilated by one voxel (the boundary sensitivity, ``attribution.boundary``: 12 more
            samples). Off where only the layer profile is read (the model-randomization
            cascade): the layer deltas are the same.
    """

    baseline: str = "layer_mean"
    blur_sigma: float = 8.0
    cohort_fill: np.ndarray | None = None
    ig_steps: int = 50
    internal_batch_size: int | None = 10
    occlusion_window: tuple[int, int, int] = (16, 16, 16)
    occlusion_stride: tuple[int, int, int] = (8, 8, 8)
    perturbations_per_eval: int = 6
    gradcam_interpolation: str = "trilinear"
    cohort_matching: str = "flat"
    ablation_extras: bool = True


@dataclass(frozen=True)
class AttributionResult:
    """One scan's voxel attribution toward the MP logit.

    Args:
        method: registry name of the method that produced it.
        map: attribution on the voxel grid ``(L, D, S)``. Channels are *summed* for gradient
            methods (Integrated Gradients stays complete: ``map.sum() == f(x) - f(baseline)``;
            saliency becomes the L1 norm of the gradient over channels). Perturbation methods
            (occlusion, layer ablation) perturb all channels of a voxel together, so the effect
            is the same in every channel and is reported once. Grad-CAM has no channel axis.
        extras: method-specific numbers, e.g. ``convergence_delta`` for Integrated Gradients or
            ``layer_deltas`` (layer key to logit change) for layer ablation.
    """

    method: str
    map: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)


class AttributionMethod(Protocol):
    """The call shape shared by every method (and by test-only pseudo-methods)."""

    def __call__(
        self,
        forward: LogitFn,
        inputs: Tensor,
        *,
        baseline: Tensor | None,
        layers_map: np.ndarray | None,
        target_layer: nn.Module | None,
        config: AttributionConfig,
    ) -> AttributionResult: ...


def mp_logit(model: nn.Module) -> LogitFn:
    """Wrap a classifier so it returns shape ``(N,)`` whether it outputs ``(N,)`` or ``(N, 1)``.

    Captum then needs no ``target`` and perturbation methods can batch perturbed copies.
    """

    def forward(batch: Tensor) -> Tensor:
        out = model(batch)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if tuple(out.shape) != (batch.shape[0],):
            raise ValueError(
                f"the classifier must output one MP logit per sample, (N,) or (N, 1); "
                f"got {tuple(out.shape)} for a batch of {batch.shape[0]}"
            )
        return out

    return forward


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put the model in eval mode (no dropout, frozen batch-norm) and restore its mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def module_name(model: nn.Module, module: nn.Module | None) -> str | None:
    """The name of ``module`` inside ``model`` (None for None): how a layer is found again in a
    copy of the model (a randomized one, or ``inference_network``'s)."""
    if module is None:
        return None
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError("target_layer is not a submodule of model")


def check_inputs(inputs: Tensor) -> None:
    """Attribution explains one scan at a time: ``(1, C, L, D, S)``."""
    if inputs.ndim != 5 or inputs.shape[0] != 1:
        raise ValueError(
            "inputs must be one scan shaped (1, C, lateral, depth, sweep); "
            f"got {tuple(inputs.shape)}"
        )


def check_label_map(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Return ``labels`` as int64 after checking it fits the scan grid and the label contract.

    Raises ScanError: a bad segmentation quarantines its scan rather than stopping the cohort.
    """
    labels = np.asarray(labels)
    if tuple(labels.shape) != tuple(shape):
        raise ScanError(f"label map shape {labels.shape} does not match the scan grid {shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ScanError(f"label map must hold integer labels; got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > MAX_LABEL):
        raise ScanError(
            f"label map values must lie in 0..{MAX_LABEL}; got {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.int64, copy=False)


def present_layers(labels: np.ndarray) -> list[Layer]:
    """The tissue layers in ``labels`` (as ``check_label_map`` returns it), in label order.

    A count per label: ``np.unique`` hashes every voxel, 56 ms of a 260-ms layer ablation at
    the GPU grid (bench 1's profile on one H200).
    """
    counts = np.bincount(labels.ravel(), minlength=MAX_LABEL + 1)
    return [layer for layer in TISSUE_LAYERS if counts[layer]]


def to_numpy(tensor: Tensor) -> np.ndarray:
    """Detach a result tensor onto the host; a half-precision one (a model under autocast) as
    float32, which NumPy can hold."""
    tensor = tensor.detach()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    return tensor.cpu().numpy()
