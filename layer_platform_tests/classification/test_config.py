from __future__ import annotations

import dataclasses

import pytest

from layer_platform.classification.config import ClassifierConfig


def test_defaults_are_valid_and_flatten_to_scalars_for_a_tracker() -> None:
    params = ClassifierConfig().to_params()
    assert params["channels"] == "16,32,48,64"
    assert params["architecture"] == "small_cnn"
    assert all(isinstance(v, str | int | float | bool) for v in params.values())
    assert set(params) == {f.name for f in dataclasses.fields(ClassifierConfig)}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architecture": "vit"}, "architecture"),
        ({"norm": "group"}, "norm"),
        ({"device": "tpu"}, "device"),
        ({"threshold_policy": "f1"}, "threshold_policy"),
        ({"min_epochs": 20, "max_epochs": 10}, "min_epochs"),
        ({"channels": ()}, "channels"),
        ({"lr": 0.0}, "lr"),
        ({"intensity_jitter": 1.5}, "intensity_jitter"),
        ({"final_model": "best_fold"}, "final_model"),
    ],
)
def test_invalid_settings_are_rejected_with_the_field_named(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        ClassifierConfig(**change)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClassifierConfig().lr = 1.0  # type: ignore[misc]
