"""Dagster resources: configuration objects, filled from the environment in one place."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pydantic

from layer_platform.classification.config import ClassifierConfig
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.imaging.preprocess import PreprocessConfig
from layer_platform.locations import as_location
from layer_platform.segmentation.config import SegmenterConfig
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.store import Warehouse

C = TypeVar("C")

#: ``LayerPaths.warehouse`` is spelled ``warehouse_path`` here: ``warehouse()`` is a method.
_CONFIG_NAME = {"warehouse": "warehouse_path"}
#: How a configured string becomes a path again (``Path`` for the others).
_PARSE: dict[str, Callable[[str], Any]] = {"artifacts": as_location}


def _config_name(field: dataclasses.Field) -> str:
    return _CONFIG_NAME.get(field.name, field.name)


def _is_optional(field: dataclasses.Field) -> bool:
    return field.default is None


def _storage_fields() -> dict[str, Any]:
    """One string setting per ``LayerPaths`` field (the optional ones default to None), so the
    resource's configuration follows the paths instead of being a second list to keep in step."""
    return {
        _config_name(f): (str | None, None) if _is_optional(f) else (str, ...)
        for f in dataclasses.fields(LayerPaths)
    }


_StorageFields = pydantic.create_model(
    "_StorageFields", __base__=dg.ConfigurableResource, __module__=__name__, **_storage_fields()
)


class StorageResource(_StorageFields):
    """Where the platform keeps its state: landing zone, warehouse, artifacts, MLflow store.

    Its settings are ``LayerPaths``' fields as strings (``warehouse`` as ``warehouse_path``).
    """

    @classmethod
    def from_paths(cls, paths: LayerPaths) -> StorageResource:
        values = {_config_name(f): getattr(paths, f.name) for f in dataclasses.fields(LayerPaths)}
        return cls(**{name: None if v is None else str(v) for name, v in values.items()})

    @property
    def paths(self) -> LayerPaths:
        values = {}
        for f in dataclasses.fields(LayerPaths):
            value = getattr(self, _config_name(f))
            values[f.name] = value if _is_optional(f) else _PARSE.get(f.name, Path)(value)
        return LayerPaths(**values)

    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.warehouse_path))


def settings_for(config_class: type[C], resource: dg.ConfigurableResource) -> C:
    """``config_class`` (a dataclass) with every setting ``resource`` also declares, by name;
    the rest keep the dataclass's defaults."""
    declared = type(resource).model_fields
    return config_class(
        **{
            f.name: getattr(resource, f.name)
            for f in dataclasses.fields(config_class)
            if f.name in declared
        }
    )


class PreprocessingResource(dg.ConfigurableResource):
    """Working grid and intensity handling; ``preset`` is ``cpu`` (default), ``gpu`` or
    ``smoke`` (``PreprocessConfig.preset``)."""

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
    preset = env.get("LAYER_PRESET", "cpu")
    return {
        "storage": StorageResource.from_paths(paths or LayerPaths.from_env(env)),
        "preprocessing": PreprocessingResource(
            preset=preset, intensity=env.get("LAYER_INTENSITY") or None
        ),
        "classifier": ClassifierResource(
            n_folds=int(env.get("LAYER_CV_FOLDS", 5)),
            promotion_floor=float(env.get("LAYER_PROMOTION_FLOOR", 0.5)),
        ),
        "segmenter": SegmenterResource(),
        "saliency": SaliencyResource.for_grid(PreprocessConfig.preset(preset)),
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
    #: ``one_cycle`` or ``constant`` (see ``ClassifierConfig.lr_schedule``).
    lr_schedule: str = ClassifierConfig.lr_schedule
    batch_size: int = ClassifierConfig.batch_size
    architecture: str = ClassifierConfig.architecture
    #: ``fold_ensemble`` or ``refit`` (see ``ClassifierConfig.final_model``).
    final_model: str = ClassifierConfig.final_model
    #: Chance that a two-channel training sample loses one modality (see
    #: ``ClassifierConfig.modality_dropout``).
    modality_dropout: float = ClassifierConfig.modality_dropout
    #: Held-out AUC below this raises a warning on the asset check.
    auc_floor: float = 0.7
    #: A first model becomes champion only above this held-out AUC (0.5 = chance); a null-driver
    #: study sets 0 so that a chance-level model's saliency can be shown to find nothing.
    promotion_floor: float = 0.5

    def config(self) -> ClassifierConfig:
        return settings_for(ClassifierConfig, self)


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
        return settings_for(SegmenterConfig, self)
