"""SaliencyResource: which methods headline and preview, and the settings it refuses."""

from __future__ import annotations

import pytest

from layer_platform.attribution import ABLATION_METHOD, DEFAULT_METHOD
from layer_platform.defs.saliency_resource import SaliencyResource


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
