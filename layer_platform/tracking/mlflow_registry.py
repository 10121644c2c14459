"""MLflow runs, model logging and the ``champion`` alias, behind a small explicit API.

MLflow's fluent API keeps a process-global tracking URI; every entry point here sets it from
the platform's paths first, so a test's temporary store never leaks into another.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from layer_platform.compute import select_device
from layer_platform.settings import LayerPaths
from layer_platform.tracking.names import registered_name

CHAMPION = "champion"
for noisy in ("mlflow", "alembic"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass(frozen=True)
class Tracking:
    """Where runs and models are stored: a local sqlite store by default, or a server."""

    tracking_uri: str
    #: None with a tracking server: the server decides where artifacts go.
    artifact_root: str | None

    @classmethod
    def for_paths(cls, paths: LayerPaths) -> Tracking:
        paths.mlflow_dir.mkdir(parents=True, exist_ok=True)
        return cls(paths.mlflow_tracking_uri, paths.mlflow_artifact_root)

    def activate(self) -> MlflowClient:
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return MlflowClient(self.tracking_uri, self.tracking_uri)

    def experiment_id(self, name: str) -> str:
        client = self.activate()
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None if self.artifact_root is None else f"{self.artifact_root}/{name}"
        return client.create_experiment(name, artifact_location=location)


def git_sha(repo: Path | None = None) -> str:
    """The code version for run tags; ``unknown`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


@contextmanager
def tracked_run(
    tracking: Tracking,
    experiment: str,
    run_name: str,
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """Start an MLflow run (nested under the active one if ``nested``) with params and tags."""
    experiment_id = tracking.experiment_id(experiment)
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        nested=nested,
        tags={"layer.code_version": git_sha(), **(tags or {})},
    ) as run:
        if params:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        yield run


def log_torch_model(
    model: torch.nn.Module, input_example: np.ndarray, registered_name: str
) -> ModelVersion:
    """Log ``model`` in the active run with its input signature and register a new version.

    Pickle serialization keeps the loaded model an ordinary ``nn.Module`` that accepts any batch
    and volume size (the ``pt2`` format only accepts the saved input shape).
    """
    model = model.cpu().eval()
    with torch.no_grad():
        output = model(torch.as_tensor(input_example)).numpy()
    signature = mlflow.models.infer_signature(input_example, output)
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        signature=signature,
        serialization_format="pickle",
        registered_model_name=registered_name,
    )
    client = MlflowClient(mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    versions = client.search_model_versions(
        f"name = '{registered_name}' and run_id = '{info.run_id}'"
    )
    return max(versions, key=lambda v: int(v.version))


def champion(tracking: Tracking, name: str) -> ModelVersion | None:
    """The version carrying the ``champion`` alias, or None before the first promotion."""
    client = tracking.activate()
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote(tracking: Tracking, name: str, version: str, reason: str) -> None:
    """Move the ``champion`` alias and record why on the version."""
    tracking.activate().set_registered_model_alias(name, CHAMPION, version)
    record_decision(tracking, name, version, reason)


def record_decision(tracking: Tracking, name: str, version: str, reason: str) -> None:
    """Record on a version why it was (not) promoted."""
    tracking.activate().set_model_version_tag(name, version, "layer.promotion", reason[:500])


def load_champion(tracking: Tracking, name: str) -> tuple[torch.nn.Module, ModelVersion]:
    """Load the champion by alias (never by a file path)."""
    version = champion(tracking, name)
    if version is None:
        raise LookupError(f"no {CHAMPION!r} version of registered model {name!r} yet")
    model = mlflow.pytorch.load_model(f"models:/{name}@{CHAMPION}", map_location="cpu")
    return model, version


def load_champion_classifier(tracking: Tracking, mode: str) -> tuple[torch.nn.Module, str]:
    """``mode``'s champion classifier in eval mode on the device, and its version."""
    model, version = load_champion(tracking, registered_name(mode))
    return model.to(select_device("auto")).eval(), str(version.version)


class ChildRuns:
    """One MLflow child run per training stage (``fold_0`` … ``final``) under a parent run.

    Metrics go through the client with explicit run ids, so per-epoch curves land in the right
    child while the parent stays the active fluent run.
    """

    def __init__(self, tracking: Tracking, parent: mlflow.ActiveRun, prefix: str):
        self._client = tracking.activate()
        self._parent = parent
        self._prefix = prefix
        self._runs: dict[str, str] = {}

    def log(self, stage: str, metrics: Mapping[str, float], step: int) -> None:
        if stage not in self._runs:
            self._runs[stage] = self._client.create_run(
                self._parent.info.experiment_id,
                run_name=f"{self._prefix}-{stage}",
                tags={"mlflow.parentRunId": self._parent.info.run_id, "layer.stage": stage},
            ).info.run_id
        for key, value in metrics.items():
            self._client.log_metric(self._runs[stage], key, value, step=step)

    def log_epoch(self, stage: str, report: Any) -> None:
        """Adapter for training callbacks that report ``(stage, report)`` with ``to_metrics()``."""
        self.log(stage, report.to_metrics(), report.epoch)

    def close(self) -> None:
        for run_id in self._runs.values():
            self._client.set_terminated(run_id)


DATA_VERSION_TAG = "layer.data_version"


def data_version(scan_ids: Sequence[str]) -> str:
    """A short hash of the scans a model was trained on (order-free)."""
    return hashlib.sha256("\n".join(sorted(scan_ids)).encode()).hexdigest()[:16]


def champion_data_version(tracking: Tracking, name: str) -> str | None:
    """The data version the current champion was trained on (None before the first one)."""
    return _trained_on(tracking, champion(tracking, name))


def latest_data_version(tracking: Tracking, name: str) -> str | None:
    """The data version the newest registered version was trained on, promoted or not.

    What decides whether data is new to a model: a challenger that lost was still trained on
    it, and training again on the same scans would only repeat that result.
    """
    versions = tracking.activate().search_model_versions(f"name = '{name}'")
    newest = max(versions, key=lambda v: int(v.version), default=None)
    return _trained_on(tracking, newest)


def _trained_on(tracking: Tracking, version: ModelVersion | None) -> str | None:
    if version is None or not version.run_id:
        return None
    return tracking.activate().get_run(version.run_id).data.tags.get(DATA_VERSION_TAG)
