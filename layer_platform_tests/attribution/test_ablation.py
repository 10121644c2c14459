"""Layer ablation on a linear model: deltas worked out by hand, sign, passes, background."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from layer_platform.attribution import AttributionConfig, aggregate_layers, attribute
from layer_platform.attribution.core import present_layers
from layer_platform.labels import TISSUE_LAYERS
from layer_platform_tests.attribution.toys import (
    LayerInteraction,
    VoxelLinear,
    six_layer_map,
    tiny_label_map,
)

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


def test_seven_samples_in_two_forward_passes_and_the_extras_in_two_more():
    """Captum's 1 + 6 samples, then f(x), the joint non-muscle fill and the boundary masks
    (six dilated layers; one-voxel-thick layers erode away, only muscle keeps voxels) in
    batches of six."""
    labels = six_layer_map()
    model = VoxelLinear(torch.ones(1, *labels.shape))
    attribute("layer_ablation", model, two_everywhere(labels), layers_map=labels, config=COHORT)
    assert (model.calls, model.samples) == (4, 7 + 2 + 6 + 1)


def test_without_extras_the_same_layer_deltas_in_the_seven_samples_alone():
    """What the model-randomization cascade runs: no joint pass, identical layer deltas."""
    labels = six_layer_map()
    full, lean = (VoxelLinear(torch.ones(1, *labels.shape)) for _ in range(2))
    x = two_everywhere(labels)
    with_extras = attribute("layer_ablation", full, x, layers_map=labels, config=COHORT)
    config = replace(COHORT, ablation_extras=False)
    without = attribute("layer_ablation", lean, x, layers_map=labels, config=config)
    assert without.extras["layer_deltas"] == with_extras.extras["layer_deltas"]
    assert (
        set(without.extras) == {"layer_deltas"} and "joint_non_muscle_delta" in with_extras.extras
    )
    assert (lean.calls, lean.samples) == (2, 7)


def test_absent_layer_has_nan_delta_and_costs_no_pass():
    labels = tiny_label_map()  # no deep fascia
    model = VoxelLinear(torch.ones(1, *labels.shape), column=True)
    result = attribute(
        "layer_ablation", model, two_everywhere(labels), layers_map=labels, config=COHORT
    )
    assert math.isnan(result.extras["layer_deltas"]["deep_fascia"])
    assert result.extras["layer_deltas"]["dermis"] == pytest.approx(6 * 1.5)
    # five layers + f(x); f(x) + the joint non-muscle fill + five dilated layers + eroded muscle
    assert model.samples == 6 + 2 + 5 + 1
    assert math.isnan(result.extras["boundary_deltas"]["dilated"]["deep_fascia"])
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


def test_joint_non_muscle_ablation_of_a_linear_model_is_the_sum_of_its_layers():
    """Linear: removing layers 1..5 at once loses exactly what the five removals lose apart."""
    labels = six_layer_map()
    weight = torch.ones(1, *labels.shape)
    weight[0][torch.as_tensor(labels == 6)] = 0.5
    result = attribute(
        "layer_ablation",
        VoxelLinear(weight),
        two_everywhere(labels),
        layers_map=labels,
        config=COHORT,
    )
    deltas = result.extras["layer_deltas"]
    non_muscle = sum(deltas[layer.key] for layer in TISSUE_LAYERS[:5])
    assert result.extras["joint_non_muscle_delta"] == pytest.approx(non_muscle)
    assert result.extras["joint_muscle_delta"] == deltas["muscle"] == pytest.approx(-6.0)
    assert "channel_deltas" not in result.extras, "one channel: nothing to split"


def test_evidence_in_either_of_two_layers_is_found_only_by_the_joint_ablation():
    """Max-pooling head ``max(mean over dermis, mean over deep fat)``, both 2 against a fill
    of 0: removing one layer leaves the other, so each single drop is 0; the joint drop is 2."""
    labels = six_layer_map()
    a = torch.as_tensor(labels == 1)[None]
    b = torch.as_tensor(labels == 4)[None]
    zero = torch.zeros(1, *labels.shape)
    model = LayerInteraction(zero, zero, a, b)
    config = AttributionConfig(baseline="cohort", cohort_fill=np.zeros((6, 1)))
    x = two_everywhere(labels).double()
    result = attribute("layer_ablation", model, x, layers_map=labels, config=config)
    deltas = result.extras["layer_deltas"]
    assert deltas["dermis"] == pytest.approx(0.0) and deltas["deep_fat"] == pytest.approx(0.0)
    assert result.extras["joint_non_muscle_delta"] == pytest.approx(2.0)
    assert result.extras["joint_muscle_delta"] == pytest.approx(0.0)


def test_each_layer_and_channel_is_ablated_alone_and_names_the_modality():
    """The logit reads only channel 1 (SWE) inside deep fascia (6 voxels, weight 1, x = 2,
    fill 0): every per-channel drop is 0 but SWE's in deep fascia, 12, which equals the
    both-channel drop, also with deep fascia dilated (its extra voxels weigh 0); two channels
    x six layers = 12 samples more, and each of the 7 perturbed masks once per channel, 14
    more, batched 6 at a time."""
    labels = six_layer_map()
    weight = torch.zeros(2, *labels.shape)
    weight[1][torch.as_tensor(labels == 5)] = 1.0
    model = VoxelLinear(weight)
    x = torch.full((1, 2, *labels.shape), 2.0)
    config = AttributionConfig(baseline="cohort", cohort_fill=np.zeros((6, 2)))
    result = attribute("layer_ablation", model, x, layers_map=labels, config=config)
    bmode, swe = result.extras["channel_deltas"]
    assert bmode == pytest.approx(dict.fromkeys(bmode, 0.0))
    assert swe == pytest.approx({**dict.fromkeys(swe, 0.0), "deep_fascia": 12.0})
    assert result.extras["layer_deltas"]["deep_fascia"] == pytest.approx(12.0)
    assert result.extras["joint_non_muscle_delta"] == pytest.approx(12.0)
    dilated_bmode, dilated_swe = result.extras["channel_boundary_deltas"]["dilated"]
    assert dilated_bmode == pytest.approx(dict.fromkeys(dilated_bmode, 0.0))
    assert dilated_swe["deep_fascia"] == pytest.approx(12.0)
    eroded = result.extras["channel_boundary_deltas"]["eroded"]
    assert [math.isnan(c["deep_fascia"]) for c in eroded] == [True, True], "eroded away"
    assert [c["muscle"] for c in eroded] == pytest.approx([0.0, 0.0])
    # + six dilated layers and eroded muscle, then those 7 in each channel alone
    assert model.samples == 7 + 1 + 1 + 12 + 7 + 14
    assert model.calls == 2 + 6  # 35 extra samples in batches of 6


def test_a_layer_absent_from_the_scan_has_nan_channel_deltas():
    labels = tiny_label_map()  # no deep fascia
    model = VoxelLinear(torch.ones(2, *labels.shape))
    x = torch.full((1, 2, *labels.shape), 2.0)
    config = AttributionConfig(baseline="cohort", cohort_fill=np.zeros((6, 2)))
    result = attribute("layer_ablation", model, x, layers_map=labels, config=config)
    for channel in result.extras["channel_deltas"]:
        assert math.isnan(channel["deep_fascia"])
        assert channel["dermis"] == pytest.approx(6 * 2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_present_layers_are_the_labels_found_in_the_map(seed: int) -> None:
    rng = np.random.default_rng(seed)
    absent = rng.choice(np.arange(1, 7), size=seed + 1, replace=False)
    labels = rng.choice(np.setdiff1d(np.arange(7), absent), size=(6, 9, 4))
    expected = [int(k) for k in np.unique(labels) if k != 0]
    assert [int(layer) for layer in present_layers(labels)] == expected
