"""References a scan is compared with: the baseline of Integrated Gradients, the fill of occlusion
and of layer ablation.

The choice decides what an attribution means. A black (``"zeros"``) reference credits voxels
for being bright, so echogenic tissue wins regardless of the model; it is offered only for
comparison. ``"mean"`` (flat grey per channel) removes the anatomy too, so layer geometry and
contrast are credited. ``"blur"`` keeps coarse intensity but erases texture and thin bright
membranes, which tilts credit toward the fasciae. ``"layer_mean"`` (the default) keeps the
anatomy, replacing every labelled region by its own mean, so only texture inside each layer is
credited. ``"cohort"`` fills each layer with a value supplied by the caller (e.g. the control
class's mean per layer and channel), asking "what if this layer looked like a control's?".
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import Tensor

from layer_platform.attribution.core import AttributionConfig, check_label_map, to_numpy
from layer_platform.labels import MAX_LABEL, TISSUE_LAYERS

BASELINE_KINDS: tuple[str, ...] = ("zeros", "mean", "blur", "layer_mean", "cohort")


def make_baseline(
    kind: str, inputs: Tensor, layers_map: np.ndarray | None, config: AttributionConfig
) -> Tensor:
    """Build the ``kind`` reference for one scan ``(1, C, L, D, S)``, same shape and device."""
    scan = to_numpy(inputs[0]).astype(np.float64)
    if kind == "zeros":
        ref = np.zeros_like(scan)
    elif kind == "mean":
        ref = np.broadcast_to(scan.mean(axis=(1, 2, 3), keepdims=True), scan.shape)
    elif kind == "blur":
        ref = gaussian_filter(scan, sigma=(0, *(3 * [config.blur_sigma])), mode="nearest")
    elif kind == "layer_mean":
        ref = _layer_means(scan, _labels_for(kind, layers_map, scan))
    elif kind == "cohort":
        ref = _cohort_fill(scan, _labels_for(kind, layers_map, scan), config.cohort_fill)
    else:
        raise ValueError(f"unknown baseline {kind!r}; expected one of: {', '.join(BASELINE_KINDS)}")
    return torch.as_tensor(
        np.ascontiguousarray(ref)[None], dtype=inputs.dtype, device=inputs.device
    )


def resolve_baseline(
    baseline: Tensor | None,
    inputs: Tensor,
    layers_map: np.ndarray | None,
    config: AttributionConfig,
) -> Tensor:
    """An explicit baseline tensor wins; otherwise build ``config.baseline``."""
    if baseline is None:
        return make_baseline(config.baseline, inputs, layers_map, config)
    if baseline.shape != inputs.shape:
        raise ValueError(
            f"baseline shape {tuple(baseline.shape)} must equal inputs {tuple(inputs.shape)}"
        )
    return baseline.to(device=inputs.device, dtype=inputs.dtype)


def _labels_for(kind: str, layers_map: np.ndarray | None, scan: np.ndarray) -> np.ndarray:
    if layers_map is None:
        raise ValueError(f"baseline {kind!r} needs the scan's layers_map (the six-layer labels)")
    return check_label_map(layers_map, scan.shape[1:])


def _layer_means(scan: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each labelled region (background included) replaced by its own per-channel mean."""
    counts = np.bincount(labels.ravel(), minlength=MAX_LABEL + 1)
    ref = np.empty_like(scan)
    for c, channel in enumerate(scan):
        sums = np.bincount(labels.ravel(), weights=channel.ravel(), minlength=MAX_LABEL + 1)
        means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        ref[c] = means[labels]
    return ref


def _cohort_fill(scan: np.ndarray, labels: np.ndarray, fill: np.ndarray | None) -> np.ndarray:
    """Tissue voxels take the supplied fill; background keeps the scan's own values."""
    n_channels = scan.shape[0]
    if fill is None:
        raise ValueError("baseline 'cohort' needs config.cohort_fill: (6, C) table or (C, L, D, S)")
    fill = np.asarray(fill, dtype=np.float64)
    if fill.shape == (len(TISSUE_LAYERS), n_channels):
        table = np.vstack([np.zeros((1, n_channels)), fill])  # row 0: background, unused
        texture = np.moveaxis(table[labels], -1, 0)
    elif fill.shape == scan.shape:
        texture = fill
    else:
        raise ValueError(
            f"cohort_fill must be shaped ({len(TISSUE_LAYERS)}, {n_channels}) or {scan.shape}; "
            f"got {fill.shape}"
        )
    return np.where(labels[None] > 0, texture, scan)
