"""Layer Shapley values: efficiency, the linear case by hand, shared evidence, cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layer_platform.attribution import AttributionConfig, attribute
from layer_platform.attribution.shapley import shapley_from_values
from layer_platform.labels import TISSUE_LAYERS
from layer_platform_tests.attribution.toys import (
    LayerInteraction,
    VoxelLinear,
    six_layer_map,
    tiny_label_map,
)

COHORT = AttributionConfig(
    baseline="cohort", cohort_fill=np.arange(1, 7)[:, None] / 2, perturbations_per_eval=16
)


def test_shapley_of_a_two_player_game_by_hand():
    """v({}) 0, v({0}) 1, v({1}) 2, v({0, 1}) 5: phi_0 = (1 + 3) / 2, phi_1 = (2 + 4) / 2."""
    assert shapley_from_values(np.array([0.0, 1.0, 2.0, 5.0]), 2) == pytest.approx([2.0, 3.0])


def test_efficiency_on_a_float64_model_with_interactions():
    labels = six_layer_map()
    rng = torch.Generator().manual_seed(0)
    shape = (1, *labels.shape)
    masks = [torch.as_tensor(labels == k)[None] for k in (2, 4)]
    model = LayerInteraction(
        torch.randn(shape, generator=rng), 0.1 * torch.randn(shape, generator=rng), *masks
    )
    x = torch.rand((1, 1, *labels.shape), generator=rng, dtype=torch.float64) * 3
    result = attribute("layer_shapley", model, x, layers_map=labels, config=COHORT)
    values = result.extras["layer_deltas"]
    gap = result.extras["logit"] - result.extras["baseline_logit"]
    assert abs(sum(values.values()) - gap) < 1e-4
    assert result.extras["efficiency_error"] < 1e-4
    with torch.no_grad():
        assert result.extras["logit"] == pytest.approx(float(model(x)), abs=1e-9)
    assert set(values) == {layer.key for layer in TISSUE_LAYERS}


def test_linear_model_shapley_equals_ablation():
    """Without interactions every marginal contribution is the same: Shapley = ablation."""
    labels = tiny_label_map()  # no deep fascia
    weight = torch.linspace(-1, 1, int(np.prod(labels.shape))).reshape(1, *labels.shape)
    x = torch.full((1, 1, *labels.shape), 2.0)
    model = VoxelLinear(weight)
    shapley = attribute("layer_shapley", model, x, layers_map=labels, config=COHORT)
    assert (model.calls, model.samples) == (2, 2**5), "32 coalitions, 16 per forward pass"
    ablation = attribute("layer_ablation", model, x, layers_map=labels, config=COHORT)
    got, want = shapley.extras["layer_deltas"], ablation.extras["layer_deltas"]
    assert np.isnan(got["deep_fascia"]) and np.isnan(want["deep_fascia"])
    for key in ("dermis", "superficial_fat", "superficial_fascia", "deep_fat", "muscle"):
        assert got[key] == pytest.approx(want[key], abs=1e-4)


def test_shared_evidence_is_split_where_ablation_sees_none():
    """``max(mean_a, mean_b)`` with both layers equally raised: removing either alone changes
    nothing (ablation 0 for both), Shapley gives each half of the joint effect."""
    labels = six_layer_map()
    zero = torch.zeros((1, *labels.shape))
    masks = [torch.as_tensor(labels == k)[None] for k in (2, 4)]
    model = LayerInteraction(zero, zero, *masks)
    x = torch.full((1, 1, *labels.shape), 5.0, dtype=torch.float64)
    config = AttributionConfig(baseline="zeros", perturbations_per_eval=64)
    shapley = attribute("layer_shapley", model, x, layers_map=labels, config=config)
    ablation = attribute("layer_ablation", model, x, layers_map=labels, config=config)
    assert ablation.extras["layer_deltas"]["superficial_fat"] == pytest.approx(0.0)
    assert ablation.extras["layer_deltas"]["deep_fat"] == pytest.approx(0.0)
    values = shapley.extras["layer_deltas"]
    assert values["superficial_fat"] == pytest.approx(2.5)
    assert values["deep_fat"] == pytest.approx(2.5)
    assert values["dermis"] == pytest.approx(0.0)
    assert shapley.extras["joint_non_muscle_delta"] == pytest.approx(5.0)
    assert shapley.extras["joint_muscle_delta"] == pytest.approx(0.0)


def test_profile_rows_and_diagnostics_of_layer_shapley():
    """Stored like ablation (one number per layer, map columns NaN), efficiency audited."""
    from layer_platform.attribution.scan_profile import profile_scan
    from layer_platform_tests.attribution.toys import TinyConvNet

    labels = six_layer_map()
    x = torch.rand((1, 1, *labels.shape), generator=torch.Generator().manual_seed(3))
    config = AttributionConfig(baseline="layer_mean", perturbations_per_eval=64)
    (profile,) = profile_scan(TinyConvNet(), x, labels, ["layer_shapley"], config).values()
    assert all(np.isnan(r.mean_saliency) and np.isfinite(r.ablation_delta) for r in profile.rows)
    assert profile.diagnostics["efficiency_error"] < 1e-4
    gap = profile.diagnostics["logit"] - profile.diagnostics["baseline_logit"]
    assert sum(r.ablation_delta for r in profile.rows) == pytest.approx(gap, abs=1e-4)
