"""The bench cohort attributes as the platform does on its grid, and its profiled re-run of
``compute_saliency`` redoes the model work."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import torch

from bench.cohort import preset, reattributing, saliency_resource
from bench.core import Context
from bench.scales import SCALES
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.imaging.preprocess import PreprocessConfig
from layer_platform.settings import LayerPaths


def test_the_profiled_rerun_attributes_every_mode_anew(tmp_path: Path) -> None:
    ctx = Context(SCALES["tiny"], torch.device("cpu"), 1, tmp_path / "results", tmp_path)
    paths = LayerPaths.from_env({"LAYER_HOME": str(tmp_path / "home")})
    saliency = SaliencyResource.smoke(torch_threads=1)
    assert saliency.keep_current  # the first run's setting: the re-run would keep its rows

    defs = reattributing(ctx, SimpleNamespace(paths=paths, saliency=saliency))

    # as Dagster hands it to the asset (a pydantic copy keeps the original's config there)
    with dg.build_resources({"saliency": defs.resources["saliency"]}) as resources:
        rerun = resources.saliency
    assert rerun.keep_current is False
    kept = {name for name in type(saliency).model_fields if name != "keep_current"}
    assert {n: getattr(rerun, n) for n in kept} == {n: getattr(saliency, n) for n in kept}


@pytest.mark.parametrize("scale", ["default", "paper"])
def test_the_cohort_occludes_the_bands_of_its_grid(tmp_path: Path, scale: str) -> None:
    ctx = Context(SCALES[scale], torch.device("cpu"), 3, tmp_path / "results", tmp_path)
    platform = SaliencyResource.for_grid(PreprocessConfig.preset(preset(ctx)))
    bench = saliency_resource(ctx)
    assert bench.occlusion_window == platform.occlusion_window
    assert bench.occlusion_stride == platform.occlusion_stride
    assert bench.torch_threads == 3
