"""Shared fixtures: where ``../shared`` real files live, and a temporary LAYER_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from layer_platform.settings import LayerPaths

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Real ultrasound files written by other software (``../shared/data/real``)."""
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real files not found at {SHARED_REAL}: clone the project beside ../shared")
    return SHARED_REAL


@pytest.fixture
def layer_paths(tmp_path: Path) -> LayerPaths:
    """A fresh, isolated LAYER_HOME for one test."""
    return LayerPaths.under(tmp_path / "layer_home").ensure()
