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
        ({"modality_dropout": 1.0}, "modality_dropout"),
        ({"final_model": "best_fold"}, "final_model"),
    ],
)
def test_invalid_settings_are_rejected_with_the_field_named(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        ClassifierConfig(**change)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClassifierConfig().lr = 1.0  # type: ignore[misc]


def test_logged_params_give_back_the_config() -> None:
    """What a run logged (every value a string, other keys beside) repeats its training."""
    config = ClassifierConfig(
        channels=(4, 8), max_epochs=3, min_epochs=2, lr=0.01, amp=False, pooling="avg"
    )
    logged = {key: str(value) for key, value in config.to_params().items()}
    assert ClassifierConfig.from_params({**logged, "input_mode": "bmode"}) == config
    assert ClassifierConfig.from_params({"lr": "0.5"}) == ClassifierConfig(lr=0.5)
