"""A champion's reference is built once, stored with its version, and read back unchanged by a
re-run or an arrival; a new champion version gets its own (issue #16)."""

from __future__ import annotations

import hashlib

import mlflow
import numpy as np
import pytest

from layer_platform.tracking.mlflow_registry import Tracking, log_torch_model, tracked_run
from layer_platform.tracking.model_files import ModelIntegrityError
from layer_platform.tracking.reference_store import (
    REFERENCE_TAG,
    TRAINED_SCANS_ARTIFACT,
    stored_reference,
)
from layer_platform_tests.classification.oof_fixtures import untrained_ensemble


def register(tracking: Tracking, name: str, scans: list[str]) -> str:
    with tracked_run(tracking, "reference-test", name):
        mlflow.log_text("\n".join(scans), TRAINED_SCANS_ARTIFACT)
        example = np.zeros((1, 1, 12, 24, 6), "f4")
        return log_torch_model(untrained_ensemble(0), example, name).version


def test_the_reference_is_frozen_per_champion_version(
    shared_tracking: Tracking, model_name: str
) -> None:
    cohort = ["a", "b", "c"]  # what the warehouse holds: grows with arrivals

    def build(trained_on: frozenset[str]) -> bytes:
        return ",".join([*sorted(set(cohort) & trained_on), str(len(cohort))]).encode()

    first = register(shared_tracking, model_name, ["a", "b"])
    built = stored_reference(shared_tracking, model_name, first, build)
    assert built == b"a,b,3"
    cohort.append("d")  # an arrival: the stored reference does not move
    assert stored_reference(shared_tracking, model_name, first, build) == built
    tags = shared_tracking.activate().get_model_version(model_name, first).tags
    assert tags[REFERENCE_TAG] == hashlib.sha256(built).hexdigest()
    second = register(shared_tracking, model_name, ["a", "b", "d"])  # a new champion
    assert stored_reference(shared_tracking, model_name, second, build) == b"a,b,d,4"


def test_a_stored_reference_that_fails_its_hash_is_refused(
    shared_tracking: Tracking, model_name: str
) -> None:
    version = register(shared_tracking, model_name, ["a"])
    stored_reference(shared_tracking, model_name, version, lambda scans: b"reference")
    client = shared_tracking.activate()
    client.set_model_version_tag(model_name, version, REFERENCE_TAG, "0" * 64)
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        stored_reference(shared_tracking, model_name, version, lambda scans: b"other")


def test_a_model_whose_run_lists_no_scans_has_no_reference(
    shared_tracking: Tracking, model_name: str
) -> None:
    with tracked_run(shared_tracking, "reference-test", model_name):
        example = np.zeros((1, 1, 12, 24, 6), "f4")
        version = log_torch_model(untrained_ensemble(0), example, model_name).version
    assert stored_reference(shared_tracking, model_name, version, lambda s: b"x") is None
