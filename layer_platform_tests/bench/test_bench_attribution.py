"""Benchmark 1 times occlusion with the bands the platform cuts on each grid."""

from __future__ import annotations

import pytest

from bench.attribution import occlusion_band
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.imaging.preprocess import PreprocessConfig


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_the_bench_occludes_the_platforms_bands_on_its_grids(preset: str) -> None:
    grid = PreprocessConfig.preset(preset)
    platform = SaliencyResource.for_grid(grid)
    assert platform.occlusion_window == platform.occlusion_stride
    assert occlusion_band(grid.target_shape) == platform.occlusion_window[1]


def test_a_grid_of_no_preset_gets_bands_about_two_mm_deep() -> None:
    # 128 voxels over the 36-mm depth of the field of view: 2 mm is 7.1 voxels, and 8 divides 128
    assert occlusion_band((64, 128, 128)) == 8
