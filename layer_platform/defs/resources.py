"""Dagster resources: configuration objects, filled from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from layer_platform.classification.config import ClassifierConfig
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.locations import as_location
from layer_platform.segmentation.config import SegmenterConfig
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.store import Warehouse


class StorageResource(dg.ConfigurableResource):
    """Where the platform keeps its state: landing zone, warehouse, artifacts, MLflow store."""

    home: str
    landing: str
    warehouse_path: str
    artifacts: str
    mlflow_dir: str
    dagster_home: str
    mlflow_server: str | None = None
    mlflow_ui_url: str | None = None

    @classmethod
    def from_paths(cls, paths: LayerPaths) -> StorageResource:
        return cls(
            home=str(paths.home),
            landing=str(paths.landing),
            warehouse_path=str(paths.warehouse),
            artifacts=str(paths.artifacts),
            mlflow_dir=str(paths.mlflow_dir),
            dagster_home=str(paths.dagster_home),
            mlflow_server=paths.mlflow_server,
            mlflow_ui_url=paths.mlflow_ui_url,
        )

    @property
    def paths(self) -> LayerPaths:
        return LayerPaths(
            home=Path(self.home),
            landing=Path(self.landing),
            dagster_home=Path(self.dagster_home),
            warehouse=Path(self.warehouse_path),
            mlflow_dir=Path(self.mlflow_dir),
            artifacts=as_location(self.artifacts),
            mlflow_server=self.mlflow_server,
            mlflow_ui_url=self.mlflow_ui_url,
        )

    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.warehouse_path))


class PreprocessingResource(dg.ConfigurableResource):
    """Working grid and intensity handling; ``preset`` is ``cpu`` (default) or ``gpu``."""

    preset: str = "cpu"
    intensity: str | None = None
    #: Mid-slice PNGs attached per scan and run (the event log stays small on big backfills).
    preview_limit: int = 64


def build_resources(
    env: Mapping[str, str] | None = None, *, paths: LayerPaths | None = None
) -> dict[str, dg.ConfigurableResource]:
    """All environment switching happens here (``LAYER_HOME``, path overrides, presets).

    ``paths`` pins the storage locations (tests, the CLI); otherwise they come from ``env``.
    """
    env = os.environ if env is None else env
    return {
        "storage": StorageResource.from_paths(paths or LayerPaths.from_env(env)),
        "preprocessing": PreprocessingResource(
            preset=env.get("LAYER_PRESET", "cpu"), intensity=env.get("LAYER_INTENSITY") or None
        ),
        "classifier": ClassifierResource(
            n_folds=int(env.get("LAYER_CV_FOLDS", 5)),
            promotion_floor=float(env.get("LAYER_PROMOTION_FLOOR", 0.5)),
        ),
        "segmenter": SegmenterResource(),
        "saliency": SaliencyResource(),
    }


class ClassifierResource(dg.ConfigurableResource):
    """Split and training settings for the pain classifiers (logged to MLflow with every run).

    Training defaults are ``ClassifierConfig``'s, so the two cannot drift apart. ``split_seed``
    salts the subject hash that fixes each subject's role and fold (``classification.splits``):
    changing it, ``n_folds`` or ``test_fraction`` makes a new split.
    """

    n_folds: int = 5
    test_fraction: float = 0.2
    split_seed: int = 0
    seed: int = ClassifierConfig.seed
    min_epochs: int = ClassifierConfig.min_epochs
    max_epochs: int = ClassifierConfig.max_epochs
    patience: int = ClassifierConfig.patience
    batch_size: int = ClassifierConfig.batch_size
    architecture: str = ClassifierConfig.architecture
    #: ``fold_ensemble`` or ``refit`` (see ``ClassifierConfig.final_model``).
    final_model: str = ClassifierConfig.final_model
    #: Held-out AUC below this raises a warning on the asset check.
    auc_floor: float = 0.7
    #: A first model becomes champion only above this held-out AUC (0.5 = chance); a null-driver
    #: study sets 0 so that a chance-level model's saliency can be shown to find nothing.
    promotion_floor: float = 0.5

    def config(self) -> ClassifierConfig:
        return ClassifierConfig(
            architecture=self.architecture,
            final_model=self.final_model,
            min_epochs=self.min_epochs,
            max_epochs=self.max_epochs,
            patience=self.patience,
            batch_size=self.batch_size,
            seed=self.seed,
        )


class SegmenterResource(dg.ConfigurableResource):
    """Segmenter training and how segmentations feed saliency."""

    epochs: int = 50
    lr: float = 3e-3
    batch_size: int = 4
    seed: int = 0
    val_fraction: float = 0.25
    #: Mean held-out Dice below this raises a warning on the model's check.
    dice_bar: float = 0.8
    #: Where a scan has reference layers, feed saliency the reference (True) or the model.
    prefer_reference: bool = True

    def config(self) -> SegmenterConfig:
        return SegmenterConfig(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed,
            val_fraction=self.val_fraction,
        )
