"""The champion alias moves only when a challenger wins on the same held-out data (real MLflow)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from layer_platform.settings import LayerPaths
from layer_platform.tracking.mlflow_registry import (
    DATA_VERSION_TAG,
    Tracking,
    champion,
    champion_data_version,
    latest_data_version,
    load_champion,
    log_torch_model,
    tracked_run,
)
from layer_platform.tracking.promotion import challenge_champion

NAME = "layer-classifier-test"


class Constant(nn.Module):
    """A model whose score on the toy held-out set is its ``quality``, so outcomes are known."""

    def __init__(self, quality: float):
        super().__init__()
        self.quality = nn.Parameter(torch.tensor(quality), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quality.expand(x.shape[0], 1)


def _register(tracking: Tracking, quality: float, trained_on: str = "data-1") -> str:
    tags = {DATA_VERSION_TAG: trained_on}
    with tracked_run(tracking, "promotion-test", f"q{quality}", tags=tags):
        version = log_torch_model(Constant(quality), np.zeros((1, 1, 2, 2, 2), "f4"), NAME)
    return version.version


def _challenge(tracking: Tracking, quality: float, trained_on: str = "data-1") -> tuple[str, bool]:
    version = _register(tracking, quality, trained_on)
    decision = challenge_champion(
        tracking, NAME, version, quality, lambda model: float(model.quality)
    )
    return version, decision.promote


def test_alias_moves_only_for_a_better_challenger(layer_paths: LayerPaths) -> None:
    tracking = Tracking.for_paths(layer_paths)
    first, promoted = _challenge(tracking, 0.75)
    assert promoted and champion(tracking, NAME).version == first

    worse, promoted = _challenge(tracking, 0.625)
    assert not promoted and champion(tracking, NAME).version == first
    reason = tracking.activate().get_model_version(NAME, worse).tags["layer.promotion"]
    assert "0.625" in reason and "0.750" in reason  # the comparison is recorded

    _, promoted = _challenge(tracking, 0.75)
    assert not promoted and champion(tracking, NAME).version == first

    better, promoted = _challenge(tracking, 0.875)
    assert promoted and champion(tracking, NAME).version == better
    model, version = load_champion(tracking, NAME)  # by alias, not by path
    assert version.version == better and float(model.quality) == 0.875


def test_a_chance_level_first_model_is_not_champion(layer_paths: LayerPaths) -> None:
    tracking = Tracking.for_paths(layer_paths)
    _, promoted = _challenge(tracking, 0.5)
    assert not promoted and champion(tracking, NAME) is None


def test_data_a_losing_challenger_was_trained_on_is_not_new(layer_paths: LayerPaths) -> None:
    """``run`` retrains when the data changed since the newest version, not since the champion:
    else every run would retrain a model whose challenger lost, with the same result."""
    tracking = Tracking.for_paths(layer_paths)
    assert latest_data_version(tracking, NAME) is None
    _challenge(tracking, 0.75, trained_on="data-1")
    _, promoted = _challenge(tracking, 0.625, trained_on="data-2")
    assert not promoted
    assert champion_data_version(tracking, NAME) == "data-1"
    assert latest_data_version(tracking, NAME) == "data-2"
