"""The champion alias moves only when a challenger wins on the same held-out data (real MLflow)."""

from __future__ import annotations

import numpy as np
import torch

from layer_platform.classification.network import SmallCNN3D
from layer_platform.tracking.mlflow_registry import (
    DATA_VERSION_TAG,
    DECISION_TAG,
    Tracking,
    champion,
    champion_data_version,
    latest_data_version,
    load_champion,
    log_torch_model,
    tracked_run,
)
from layer_platform.tracking.promotion import challenge_champion


def with_quality(quality: float) -> SmallCNN3D:
    """A tiny classifier whose output bias is its ``quality``: the score the toy held-out set
    gives it, so outcomes are known, and the stored weights must carry it back."""
    model = SmallCNN3D(1, (2,))
    with torch.no_grad():
        model.head[-1].bias.fill_(quality)
    return model


def quality_of(model: torch.nn.Module, _version: object = None) -> float:
    return model.head[-1].bias.detach().item()


def register(tracking: Tracking, name: str, quality: float, trained_on: str = "data-1") -> str:
    tags = {DATA_VERSION_TAG: trained_on}
    with tracked_run(tracking, "promotion-test", f"q{quality}", tags=tags):
        version = log_torch_model(with_quality(quality), np.zeros((1, 1, 2, 2, 2), "f4"), name)
    return version.version


def challenge(
    tracking: Tracking, name: str, quality: float, trained_on: str = "data-1"
) -> tuple[str, bool]:
    version = register(tracking, name, quality, trained_on)
    decision = challenge_champion(tracking, name, version, quality, quality_of)
    return version, decision.promote


def test_alias_moves_only_for_a_better_challenger(
    shared_tracking: Tracking, model_name: str
) -> None:
    tracking, name = shared_tracking, model_name
    first, promoted = challenge(tracking, name, 0.75)
    assert promoted and champion(tracking, name).version == first

    worse, promoted = challenge(tracking, name, 0.625)
    assert not promoted and champion(tracking, name).version == first
    reason = tracking.activate().get_model_version(name, worse).tags[DECISION_TAG]
    assert "0.625" in reason and "0.750" in reason  # the comparison is recorded

    _, promoted = challenge(tracking, name, 0.75)
    assert not promoted and champion(tracking, name).version == first

    better, promoted = challenge(tracking, name, 0.875)
    assert promoted and champion(tracking, name).version == better
    model, version = load_champion(tracking, name)  # by alias, not by path
    assert version.version == better and quality_of(model) == 0.875


def test_a_chance_level_first_model_is_not_champion(
    shared_tracking: Tracking, model_name: str
) -> None:
    _, promoted = challenge(shared_tracking, model_name, 0.5)
    assert not promoted and champion(shared_tracking, model_name) is None


def test_data_a_losing_challenger_was_trained_on_is_not_new(
    shared_tracking: Tracking, model_name: str
) -> None:
    """``run`` retrains when the data changed since the newest version, not since the champion:
    else every run would retrain a model whose challenger lost, with the same result."""
    tracking, name = shared_tracking, model_name
    assert latest_data_version(tracking, name) is None
    challenge(tracking, name, 0.75, trained_on="data-1")
    _, promoted = challenge(tracking, name, 0.625, trained_on="data-2")
    assert not promoted
    assert champion_data_version(tracking, name) == "data-1"
    assert latest_data_version(tracking, name) == "data-2"


def test_a_version_without_a_decision_does_not_block_retraining(
    shared_tracking: Tracking, model_name: str
) -> None:
    """A run that dies between registering and deciding leaves an undecided version: staleness
    ignores it, so the data it was trained on still counts as new and is trained on again."""
    tracking, name = shared_tracking, model_name
    challenge(tracking, name, 0.75, trained_on="data-1")
    register(tracking, name, 0.875, trained_on="data-2")  # the run dies here: no decision
    assert latest_data_version(tracking, name) == "data-1"
    retrained, promoted = challenge(tracking, name, 0.875, trained_on="data-2")
    assert promoted and champion(tracking, name).version == retrained
    assert latest_data_version(tracking, name) == "data-2"
