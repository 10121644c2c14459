"""SaliencyResource: which methods headline and preview, and the settings it refuses."""

from __future__ import annotations

import pytest
import torch

from layer_platform.attribution import ABLATION_METHOD, DEFAULT_METHOD
from layer_platform.defs.resources import build_resources
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.imaging.preprocess import PreprocessConfig


def test_the_default_method_is_computed_and_headlines() -> None:
    resource = SaliencyResource().validated()
    assert resource.default_method == DEFAULT_METHOD == ABLATION_METHOD
    assert DEFAULT_METHOD in resource.methods


def test_an_ablation_default_is_previewed_beside_the_first_voxel_map() -> None:
    assert SaliencyResource().preview_methods() == [ABLATION_METHOD, "integrated_gradients"]
    only_maps_after = SaliencyResource(methods=["layer_ablation", "gradcam", "saliency"])
    assert only_maps_after.preview_methods() == [ABLATION_METHOD, "gradcam"]


def test_a_map_default_is_previewed_alone() -> None:
    resource = SaliencyResource(default_method="occlusion")
    assert resource.validated().preview_methods() == ["occlusion"]
    assert SaliencyResource(methods=["layer_ablation"]).preview_methods() == [ABLATION_METHOD]


def test_a_default_outside_the_methods_is_refused() -> None:
    with pytest.raises(ValueError, match="default_method 'layer_ablation' is not among methods"):
        SaliencyResource(methods=["integrated_gradients"]).validated()


def test_batch_sizes_follow_the_device_unless_set() -> None:
    auto = SaliencyResource(ig_steps=12)
    assert auto.batch_sizes(torch.device("cpu")) == (2, 2)
    assert auto.batch_sizes(torch.device("cuda")) == (12, 18)  # no CUDA call: only its type
    fixed = SaliencyResource(internal_batch_size=4, perturbations_per_eval=6)
    assert fixed.batch_sizes(torch.device("cuda")) == fixed.batch_sizes(torch.device("cpu"))
    assert fixed.batch_sizes(torch.device("cpu")) == (4, 6)
    with pytest.raises(ValueError, match=r"must be >= 0 \(0: auto\)"):
        SaliencyResource(perturbations_per_eval=-1).validated()


def test_randomization_methods_default_to_the_headline_method_and_must_be_computed() -> None:
    assert SaliencyResource().validated().randomization_methods == []
    with pytest.raises(ValueError, match="randomization_methods"):
        SaliencyResource(
            methods=["layer_ablation"], randomization_methods=["occlusion"]
        ).validated()


def test_faithfulness_settings_reach_the_deletion_and_are_checked() -> None:
    settings = SaliencyResource(faithfulness_orders=7, road_noise=0.05).faithfulness_settings()
    assert (settings.n_random_orders, settings.road_noise) == (7, 0.05)
    assert "random_orders=7" in settings.protocol()
    with pytest.raises(ValueError, match="faithfulness_orders and road_noise must be >= 0"):
        SaliencyResource(faithfulness_orders=-1).validated()


def test_occlusion_bands_follow_the_working_grid() -> None:
    assert SaliencyResource.for_grid(PreprocessConfig.cpu()).attribution_settings() == (
        SaliencyResource().attribution_settings()  # the CPU grid's bands are the defaults
    )
    gpu = SaliencyResource.for_grid(PreprocessConfig.gpu())
    assert gpu.occlusion_window == gpu.occlusion_stride == [128, 22, 48]
    assert build_resources({"LAYER_PRESET": "gpu"})["saliency"].occlusion_window == [128, 22, 48]
