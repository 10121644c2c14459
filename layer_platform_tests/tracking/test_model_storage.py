"""Registered models are weights + architecture, checked by SHA-256 before loading (real MLflow)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pytest
import torch
from mlflow.exceptions import MlflowException
from torch import nn

from layer_platform.classification.network import FoldEnsemble, SmallCNN3D
from layer_platform.segmentation.config import SegmenterConfig
from layer_platform.segmentation.network import build_segmenter
from layer_platform.tracking.architecture import describe
from layer_platform.tracking.mlflow_registry import (
    DECISION_TAG,
    SHA256_TAGS,
    LegacyModelWarning,
    Tracking,
    champion,
    load_champion,
    load_version,
    log_torch_model,
    promote,
    tracked_run,
)
from layer_platform.tracking.model_files import WEIGHTS_FILE, ModelIntegrityError, sha256_of
from layer_platform.tracking.promotion import (
    PromotionDecision,
    challenge_champion,
    should_promote,
)
from layer_platform_tests.tracking.test_champion_alias import challenge, quality_of, register


def logged(tracking: Tracking, name: str, model: nn.Module, example: np.ndarray):
    with tracked_run(tracking, "storage-test", name):
        return log_torch_model(model, example, name)


def model_folder(version) -> Path:
    return Path(urlparse(version.source).path)


def trained_like(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """Batch-norm running statistics away from their defaults, as after training."""
    model.train()
    with torch.no_grad():
        model(example * 3 + 1)
    return model.eval()


def test_a_fold_ensemble_round_trips_with_identical_outputs(
    shared_tracking: Tracking, model_name: str
) -> None:
    torch.manual_seed(0)
    example = torch.randn(2, 2, 8, 16, 8)
    members = [SmallCNN3D(2, (4, 8)) for _ in range(2)]
    model = trained_like(FoldEnsemble(members), example)
    version = logged(shared_tracking, model_name, model, example[:1].numpy())

    loaded = load_version(shared_tracking, version)
    assert isinstance(loaded, FoldEnsemble) and len(loaded.heads) == 2
    other_grid = torch.randn(3, 2, 16, 24, 8)  # not the logged example's size
    with torch.no_grad():
        for x in (example, other_grid):
            assert torch.equal(model(x), loaded(x))


def test_the_segmenter_round_trips_and_its_signature_leaves_sizes_free(
    shared_tracking: Tracking, model_name: str
) -> None:
    torch.manual_seed(1)
    model = build_segmenter(SegmenterConfig(channels=(4, 8), strides=(2,))).eval()
    example = np.random.default_rng(0).normal(size=(1, 1, 8, 8, 8)).astype("f4")
    version = logged(shared_tracking, model_name, model, example)
    loaded = load_version(shared_tracking, version)
    x = torch.randn(1, 1, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    signature = mlflow.models.Model.load(str(model_folder(version) / "MLmodel")).signature
    assert signature.inputs.inputs[0].shape == (-1, 1, -1, -1, -1)
    assert signature.outputs.inputs[0].shape == (-1, 7, -1, -1, -1)


def test_a_tampered_champion_is_refused_and_never_replaced_uncompared(
    shared_tracking: Tracking, model_name: str
) -> None:
    tracking, name = shared_tracking, model_name
    first, _ = challenge(tracking, name, 0.75)
    weights = model_folder(tracking.activate().get_model_version(name, first)) / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")

    with pytest.raises(ModelIntegrityError, match=r"SHA-256 check of weights\.pt failed"):
        load_champion(tracking, name)
    with pytest.raises(ModelIntegrityError):
        challenge(tracking, name, 0.875)
    assert champion(tracking, name).version == first
    undecided = max(
        tracking.activate().search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)
    )
    assert DECISION_TAG not in undecided.tags  # so the next run challenges again


def test_a_pickle_in_place_of_weights_is_refused_even_with_matching_digests(
    shared_tracking: Tracking, model_name: str
) -> None:
    """Whoever can write the registry can rewrite the digest tags too; ``weights_only`` still
    refuses a file that would run code when unpickled."""
    tracking, name = shared_tracking, model_name
    version = register(tracking, name, 0.75)
    weights = model_folder(tracking.activate().get_model_version(name, version)) / WEIGHTS_FILE
    torch.save({"head.0.weight": _RunsCode()}, weights)
    tracking.activate().set_model_version_tag(
        name, version, SHA256_TAGS[WEIGHTS_FILE], sha256_of(weights)
    )
    with pytest.raises(Exception, match=r"[Ww]eights.only"):
        load_version(tracking, tracking.activate().get_model_version(name, version))


class _RunsCode:
    def __reduce__(self):
        return (print, ("this would have run in every worker",))


def test_a_legacy_pickled_champion_still_loads_with_a_warning(
    shared_tracking: Tracking, model_name: str
) -> None:
    tracking, name = shared_tracking, model_name
    torch.manual_seed(2)
    model = SmallCNN3D(1, (2,)).eval()
    with tracked_run(tracking, "storage-test", "legacy"):
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            serialization_format="pickle",
            registered_model_name=name,
            pip_requirements=["torch"],  # skips ~20 s of requirement inference
        )
    version = tracking.activate().search_model_versions(f"run_id = '{info.run_id}'")[0]
    promote(tracking, name, version.version, "legacy champion")
    with pytest.warns(LegacyModelWarning, match="retrain"):
        loaded, _ = load_champion(tracking, name)
    x = torch.randn(1, 1, 4, 4, 4)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))

    # Once retrained into weights, the model's pickles are refused: no downgrade.
    register(tracking, name, 0.75)
    with pytest.raises(ModelIntegrityError, match="refusing to unpickle"):
        load_champion(tracking, name)


def test_a_registry_error_is_not_read_as_no_champion(
    shared_tracking: Tracking, model_name: str
) -> None:
    """A locked or broken store raises (MLflow reports both as TEMPORARILY_UNAVAILABLE): the
    challenger must not be judged as if there were no champion. The alias table is hidden for
    the duration, which fails at once where a real lock waits out sqlite's 20 s busy timeout;
    ``decide`` records what it was asked, so a decision taken before the failure shows."""
    tracking, name = shared_tracking, model_name
    first, _ = challenge(tracking, name, 0.75)
    challenger = register(tracking, name, 0.875)
    asked: list[float | None] = []

    def decide(candidate: float, current: float | None) -> PromotionDecision:
        asked.append(current)
        return should_promote(candidate, current)

    database = tracking.tracking_uri.removeprefix("sqlite:///")
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE registered_model_aliases RENAME TO hidden_aliases")
    try:
        with pytest.raises(MlflowException) as raised:
            champion(tracking, name)
        assert raised.value.error_code == "TEMPORARILY_UNAVAILABLE"
        with pytest.raises(MlflowException):
            challenge_champion(tracking, name, challenger, 0.875, quality_of, decide)
    finally:
        with sqlite3.connect(database) as connection:
            connection.execute("ALTER TABLE hidden_aliases RENAME TO registered_model_aliases")
    assert asked == []  # nothing was decided on a registry that could not be read
    assert champion(tracking, name).version == first
    assert DECISION_TAG not in tracking.activate().get_model_version(name, challenger).tags


def test_only_the_platforms_networks_can_be_registered() -> None:
    with pytest.raises(TypeError, match="cannot register a Linear"):
        describe(nn.Linear(2, 1))
    assert json.loads(json.dumps(describe(build_segmenter(SegmenterConfig()))))["kind"] == (
        "monai_unet"
    )
