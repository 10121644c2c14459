"""Each method on toy models whose attributions are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layer_platform.attribution import (
    METHODS,
    PLATFORM_METHODS,
    AttributionConfig,
    attribute,
    completeness_error,
    passes_completeness,
)
from layer_platform.attribution.occlusion import depth_bands
from layer_platform_tests.attribution.toys import TinyConvNet, VoxelLinear, six_layer_map

ZEROS = AttributionConfig(baseline="zeros")


def random_scan(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def linear() -> tuple[VoxelLinear, torch.Tensor]:
    """A two-channel linear model with signed weights and a scan on the 4 x 7 x 2 grid."""
    weight = random_scan((2, 4, 7, 2), seed=1)
    return VoxelLinear(weight, bias=0.3), random_scan((1, 2, 4, 7, 2), seed=2)


def test_registry_names():
    assert list(METHODS) == [
        "integrated_gradients",
        "saliency",
        "gradcam",
        "occlusion",
        "layer_ablation",
        "layer_shapley",
    ]
    assert "layer_shapley" not in PLATFORM_METHODS, "selectable, not a default (64 passes)"
    with pytest.raises(ValueError, match="unknown attribution method"):
        attribute("lime", VoxelLinear(torch.ones(1, 2, 2, 2)), torch.ones(1, 1, 2, 2, 2))


def test_integrated_gradients_of_a_linear_model_is_input_times_weight(linear):
    model, x = linear
    result = attribute("integrated_gradients", model, x, config=ZEROS)
    expected = (x[0] * model.weight).sum(dim=0).detach().numpy()
    assert result.map.shape == (4, 7, 2)
    np.testing.assert_allclose(result.map, expected, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert result.extras["logit"] == pytest.approx(float(model(x)), abs=1e-4)
    assert result.extras["baseline_logit"] == pytest.approx(0.3)
    assert completeness_error(result) < 1e-5
    assert abs(result.extras["convergence_delta"]) < 1e-4


def test_integrated_gradients_uses_an_explicit_baseline(linear):
    model, x = linear
    reference = torch.full_like(x, 0.5)
    result = attribute("integrated_gradients", model, x, baseline=reference)
    expected = ((x - reference)[0] * model.weight).sum(dim=0).detach().numpy()
    np.testing.assert_allclose(result.map, expected, rtol=1e-4, atol=1e-5)


def test_integrated_gradients_is_complete_on_a_nonlinear_net():
    x = random_scan((1, 1, 4, 7, 2), seed=3) + 1.0
    config = AttributionConfig(ig_steps=32, internal_batch_size=8)
    result = attribute(
        "integrated_gradients", TinyConvNet(), x, layers_map=six_layer_map(), config=config
    )
    assert result.extras["logit"] != pytest.approx(result.extras["baseline_logit"])
    assert passes_completeness(result, tolerance=0.01)


def test_completeness_error_flags_a_map_that_does_not_add_up(linear):
    model, x = linear
    result = attribute("integrated_gradients", model, x, config=ZEROS)
    doubled = type(result)(result.method, result.map * 2, result.extras)
    assert completeness_error(doubled) == pytest.approx(1.0, rel=1e-4)
    assert not passes_completeness(doubled)
    with pytest.raises(ValueError, match="integrated_gradients"):
        completeness_error(attribute("saliency", model, x))


def test_default_baseline_needs_the_label_map(linear):
    model, x = linear
    with pytest.raises(ValueError, match="layers_map"):
        attribute("integrated_gradients", model, x)


def test_saliency_of_a_linear_model_is_the_absolute_weight(linear):
    model, x = linear
    result = attribute("saliency", model, x)
    np.testing.assert_allclose(result.map, model.weight.abs().sum(dim=0).detach().numpy())


def test_one_column_output_is_accepted(linear):
    model, x = linear
    column = VoxelLinear(model.weight.detach(), column=True)
    np.testing.assert_allclose(
        attribute("saliency", column, x).map, attribute("saliency", model, x).map
    )


def test_multi_logit_output_is_refused():
    class TwoLogits(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :2]

    with pytest.raises(ValueError, match="one MP logit"):
        attribute("saliency", TwoLogits(), torch.ones(1, 1, 2, 2, 2))


def test_inputs_must_be_one_scan(linear):
    model, x = linear
    with pytest.raises(ValueError, match="one scan"):
        attribute("saliency", model, torch.cat([x, x]))


def test_model_mode_is_restored(linear):
    model, x = linear
    model.train()
    attribute("saliency", model, x)
    assert model.training


def test_gradcam_by_hand():
    """A 1x1x1 stride-2 target conv A, mean-pooled, then logit = 2 A0 + 1 A1. The channel
    weights are the mean gradients 2/n and 1/n (n = 4 coarse voxels), so with A0 = x, A1 = -x
    on the coarse grid the map is ReLU(x / 4), repeated by nearest-neighbour up-sampling."""
    target = torch.nn.Conv3d(1, 2, kernel_size=1, stride=2, bias=False)
    head = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        target.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1, 1))
        head.weight.copy_(torch.tensor([[2.0, 1.0]]))
    model = torch.nn.Sequential(target, torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), head)
    x = random_scan((1, 1, 4, 4, 2), seed=4)
    config = AttributionConfig(gradcam_interpolation="nearest")
    result = attribute("gradcam", model, x, target_layer=target, config=config)
    coarse = torch.relu(x[0, 0, ::2, ::2, ::2] / 4)
    expected = coarse.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2)
    np.testing.assert_allclose(result.map, expected.numpy(), rtol=1e-5, atol=1e-7)
    assert (result.map == 0).any() and (result.map > 0).any()


def test_gradcam_returns_the_input_grid():
    net = TinyConvNet(in_channels=2)
    x = random_scan((1, 2, 5, 7, 3), seed=5)
    result = attribute("gradcam", net, x, target_layer=net.conv2)
    assert result.map.shape == (5, 7, 3)
    assert np.isfinite(result.map).all() and (result.map >= 0).all()
    with pytest.raises(ValueError, match="target_layer"):
        attribute("gradcam", net, x)


def test_occlusion_with_single_voxels_equals_ig_of_a_linear_model(linear):
    model, x = linear
    config = AttributionConfig(
        baseline="zeros", occlusion_window=(1, 1, 1), occlusion_stride=(1, 1, 1)
    )
    result = attribute("occlusion", model, x, config=config)
    np.testing.assert_allclose(
        result.map, (x[0] * model.weight).sum(dim=0).detach().numpy(), rtol=1e-4, atol=1e-5
    )


def test_occlusion_boxes_share_their_total_effect(linear):
    model, x = linear
    config = AttributionConfig(
        baseline="zeros", occlusion_window=(2, 7, 2), occlusion_stride=(2, 7, 2)
    )
    result = attribute("occlusion", model, x, config=config)
    contribution = (x[0] * model.weight).sum(dim=0).detach().numpy()
    for half in (slice(0, 2), slice(2, 4)):
        np.testing.assert_allclose(result.map[half], contribution[half].sum(), rtol=1e-4)


def test_occlusion_window_is_clipped_to_a_small_scan(linear):
    model, x = linear
    result = attribute("occlusion", model, x, config=ZEROS)  # default 16^3 box > 4 x 7 x 2
    with torch.no_grad():
        total = float(model(x)) - 0.3
    np.testing.assert_allclose(result.map, np.full((4, 7, 2), total), rtol=1e-4)


@pytest.mark.parametrize(
    ("shape", "spacing", "band"),
    [
        ((32, 144, 16), (1.0, 0.25, 1.5), 8),  # the CPU grid: 18 bands of 2 mm
        ((128, 352, 48), (0.25, 0.1, 0.5), 22),  # the GPU grid: 20 voxels would not tile 352
        ((16, 143, 8), (2.0, 0.25, 1.5), 11),  # 143 = 11 x 13
    ],
)
def test_depth_bands_tile_the_depth_full_width_and_sweep(shape, spacing, band):
    window = depth_bands(shape, spacing)
    assert window == (shape[0], band, shape[2])
    assert shape[1] % window[1] == 0


def test_depth_bands_cover_every_voxel_once(linear):
    model, x = linear  # a 4 x 7 x 2 scan
    window = depth_bands((4, 7, 2), (1.0, 0.5, 1.0), band_mm=3.5)  # 7 voxels: one band
    config = AttributionConfig(baseline="zeros", occlusion_window=window, occlusion_stride=window)
    result = attribute("occlusion", model, x, config=config)
    with torch.no_grad():
        total = float(model(x)) - 0.3
    np.testing.assert_allclose(result.map, np.full((4, 7, 2), total), rtol=1e-4)
    with pytest.raises(ValueError, match="band_mm must be > 0"):
        depth_bands((4, 7, 2), (1.0, 0.5, 1.0), band_mm=0)
