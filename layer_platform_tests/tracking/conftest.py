"""One MLflow store for the tracking tests: a fresh sqlite store costs ~7 s of schema creation,
so tests share it and keep apart by registering under their own model name."""

from __future__ import annotations

import re

import pytest

from layer_platform.settings import LayerPaths
from layer_platform.tracking.mlflow_registry import Tracking


@pytest.fixture(scope="session")
def shared_tracking(tmp_path_factory: pytest.TempPathFactory) -> Tracking:
    return Tracking.for_paths(LayerPaths.under(tmp_path_factory.mktemp("tracking")).ensure())


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """A registered-model name of this test's own (so shared-store tests never meet)."""
    return "test-" + re.sub(r"[^A-Za-z0-9-]", "-", request.node.name)[:80]
