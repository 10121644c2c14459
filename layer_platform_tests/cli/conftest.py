"""A tiny warehouse under a temporary LAYER_HOME that the CLI and the notebook API resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from layer_platform.settings import LayerPaths
from layer_platform_tests.cli import tiny_warehouse


@pytest.fixture
def tiny_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LayerPaths:
    """LAYER_HOME set to a fresh home holding ``tiny_warehouse.build``'s rows (no files)."""
    home = tmp_path / "home"
    monkeypatch.setenv("LAYER_HOME", str(home))
    for var in ("LAYER_WAREHOUSE", "LAYER_ARTIFACTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    paths = LayerPaths.under(home).ensure()
    tiny_warehouse.build(paths)
    return paths
