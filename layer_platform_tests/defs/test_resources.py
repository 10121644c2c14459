"""The resources' settings are derived, not hand-copied: what they derive must round-trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from layer_platform.classification.config import ClassifierConfig
from layer_platform.defs.resources import ClassifierResource, SegmenterResource, StorageResource
from layer_platform.settings import LayerPaths


def test_storage_settings_are_the_paths_and_round_trip(tmp_path: Path) -> None:
    paths = LayerPaths.from_env(
        {
            "LAYER_HOME": str(tmp_path),
            "LAYER_ARTIFACTS_DIR": "memory://bucket/artifacts",
            "MLFLOW_TRACKING_URI": "http://tracking:5000",
        }
    )
    storage = StorageResource.from_paths(paths)
    assert storage.paths == paths
    assert storage.mlflow_ui_url is None
    assert storage.warehouse_path == str(tmp_path / "warehouse" / "layer.duckdb")
    names = {f.name for f in dataclasses.fields(LayerPaths)} - {"warehouse"} | {"warehouse_path"}
    assert set(StorageResource.model_fields) == names
    assert {k for k, f in StorageResource.model_fields.items() if not f.is_required()} == {
        "mlflow_server",
        "mlflow_ui_url",
    }


def test_resource_configs_take_the_shared_settings_only() -> None:
    config = ClassifierResource(
        seed=7, min_epochs=2, max_epochs=3, n_folds=2, auc_floor=0.1
    ).config()
    assert (config.seed, config.min_epochs, config.max_epochs) == (7, 2, 3)
    assert config.lr == ClassifierConfig.lr  # not a resource setting: the config's default
    segmenter = SegmenterResource(epochs=2, val_fraction=0.5, dice_bar=0.1).config()
    assert (segmenter.epochs, segmenter.val_fraction) == (2, 0.5)
