"""Layer ablation on a linear model: deltas worked out by hand, sign, passes, background."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from layer_platform.attribution import AttributionConfig, aggregate_layers, attribute
from layer_platform.labels import TISSUE_LAYERS
from layer_platform_tests.attribution.toys import VoxelLinear, six_layer_map, tiny_label_map

#: Per-layer fill k / 2 for layer k, one channel.
COHORT = AttributionConfig(baseline="cohort", cohort_fill=np.arange(1, 7)[:, None] / 2)


def two_everywhere(labels: np.ndarray) -> torch.Tensor:
    return torch.full((1, 1, *labels.shape), 2.0)


def test_deltas_match_hand_computation():
    """x = 2, w = 1 (muscle 0.5), fill k/2: delta_k = n_k w_k (2 - k/2) with n = 6 (muscle 12)."""
    labels = six_layer_map()
    weight = torch.ones(1, *labels.shape)
    weight[0][torch.as_tensor(labels == 6)] = 0.5
    model = VoxelLinear(weight)
    result = attribute(
        "layer_ablation", model, two_everywhere(labels), layers_map=labels, config=COHORT
    )
    assert result.extras["layer_deltas"] == pytest.approx(
        {
            "dermis": 9.0,
            "superficial_fat": 6.0,
            "superficial_fascia": 3.0,
            "deep_fat": 0.0,
            "deep_fascia": -3.0,
            "muscle": -6.0,
        }
    )
    assert result.map[labels == 1] == pytest.approx(9.0)
    assert (result.map[labels == 0] == 0).all()


def test_background_is_never_ablated():
    """With a zeros fill, a background folded into an ablation would add 2 per voxel."""
    labels = six_layer_map()
    model = VoxelLinear(torch.ones(1, *labels.shape))
    config = AttributionConfig(baseline="zeros")
    result = attribute(
        "layer_ablation", model, two_everywhere(labels), layers_map=labels, config=config
    )
    assert result.extras["layer_deltas"]["dermis"] == pytest.approx(12.0)
    assert result.extras["layer_deltas"]["muscle"] == pytest.approx(24.0)


def test_seven_samples_in_two_forward_passes():
    labels = six_layer_map()
    model = VoxelLinear(torch.ones(1, *labels.shape))
    attribute("layer_ablation", model, two_everywhere(labels), layers_map=labels, config=COHORT)
    assert (model.calls, model.samples) == (2, 7)


def test_absent_layer_has_nan_delta_and_costs_no_pass():
    labels = tiny_label_map()  # no deep fascia
    model = VoxelLinear(torch.ones(1, *labels.shape), column=True)
    result = attribute(
        "layer_ablation", model, two_everywhere(labels), layers_map=labels, config=COHORT
    )
    assert math.isnan(result.extras["layer_deltas"]["deep_fascia"])
    assert result.extras["layer_deltas"]["dermis"] == pytest.approx(6 * 1.5)
    assert model.samples == 6
    rows = aggregate_layers(result.map, labels, ablation_deltas=result.extras["layer_deltas"])
    assert rows[0].ablation_delta == pytest.approx(9.0)
    assert math.isnan(rows[4].ablation_delta)


def test_layer_mean_fill_is_invisible_to_a_model_reading_layer_means():
    """w constant inside each layer: sum_layer w (x - mean) = 0 for every layer."""
    labels = six_layer_map()
    weight = torch.as_tensor(labels, dtype=torch.float32)[None]
    x = torch.randn((1, 1, *labels.shape), generator=torch.Generator().manual_seed(0))
    result = attribute("layer_ablation", VoxelLinear(weight), x, layers_map=labels)
    deltas = [result.extras["layer_deltas"][layer.key] for layer in TISSUE_LAYERS]
    np.testing.assert_allclose(deltas, 0.0, atol=1e-5)


def test_two_channels_are_ablated_together():
    labels = six_layer_map()
    model = VoxelLinear(torch.ones(2, *labels.shape))
    x = torch.full((1, 2, *labels.shape), 2.0)
    config = AttributionConfig(baseline="cohort", cohort_fill=np.zeros((6, 2)))
    result = attribute("layer_ablation", model, x, layers_map=labels, config=config)
    assert result.extras["layer_deltas"]["dermis"] == pytest.approx(2 * 6 * 2.0)


def test_needs_the_label_map():
    with pytest.raises(ValueError, match="layers_map"):
        attribute("layer_ablation", VoxelLinear(torch.ones(1, 2, 2, 2)), torch.ones(1, 1, 2, 2, 2))
