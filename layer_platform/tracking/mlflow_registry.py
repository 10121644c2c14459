"""MLflow runs, model logging and the ``champion`` alias, behind a small explicit API.

MLflow's fluent API keeps a process-global tracking URI; every entry point here sets it from
the platform's paths first, so a test's temporary store never leaks into another.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import tempfile
import warnings
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
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from layer_platform.classification.modes import INPUT_MODES
from layer_platform.compute import select_device
from layer_platform.settings import LayerPaths
from layer_platform.tracking.model_files import (
    ARCHITECTURE_FILE,
    FORMAT,
    WEIGHTS_FILE,
    ModelIntegrityError,
    read_model,
    write_model,
)
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
    #: The MLflow UI that links point to (``LayerPaths.mlflow_ui_url``).
    ui_url: str = "http://127.0.0.1:5000"

    @classmethod
    def for_paths(cls, paths: LayerPaths) -> Tracking:
        paths.mlflow_dir.mkdir(parents=True, exist_ok=True)
        server = paths.mlflow_server if (paths.mlflow_server or "").startswith("http") else None
        ui_url = paths.mlflow_ui_url or server or cls.ui_url
        return cls(paths.mlflow_tracking_uri, paths.mlflow_artifact_root, ui_url.rstrip("/"))

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


MODEL_ARTIFACT = "model"
#: On a model version: the file format (absent on legacy pickled versions) and file digests.
FORMAT_TAG = "layer.format"
SHA256_TAGS = {WEIGHTS_FILE: "layer.weights_sha256", ARCHITECTURE_FILE: "layer.architecture_sha256"}
#: Written on a version once its promotion decision is made (``record_decision``).
DECISION_TAG = "layer.promotion"


class LegacyModelWarning(UserWarning):
    """A version stored as a pickle (before weights-only storage): loads until retrained."""


def log_torch_model(
    model: torch.nn.Module,
    input_example: np.ndarray,
    registered_name: str,
    tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Log ``model`` in the active run as weights + architecture and register a new version.

    The version carries the files' SHA-256 digests, checked before every load. The signature
    fixes only the channel count: batch and spatial sizes are -1, so a model trained on the CPU
    grid is documented as accepting any grid. ``tags`` go on the version too (e.g. the split
    it was trained under).
    """
    model = model.cpu().eval()
    with torch.no_grad():
        output = model(torch.as_tensor(input_example)).numpy()
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_torch_model needs an active MLflow run (see tracked_run)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / MODEL_ARTIFACT
        digests = write_model(model, folder, _free_shape(input_example))
        signature = ModelSignature(
            Schema([TensorSpec(input_example.dtype, _free_shape(input_example)["shape"])]),
            Schema([TensorSpec(output.dtype, _free_shape(output)["shape"])]),
        )
        Model(run_id=run.info.run_id, artifact_path=MODEL_ARTIFACT, signature=signature).save(
            folder / "MLmodel"
        )
        mlflow.log_artifacts(str(folder), MODEL_ARTIFACT)
    client = MlflowClient(mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    _ensure_registered(client, registered_name)
    tags = {
        **(tags or {}),
        FORMAT_TAG: FORMAT,
        **{SHA256_TAGS[file]: sha for file, sha in digests.items()},
    }
    return client.create_model_version(
        registered_name, mlflow.get_artifact_uri(MODEL_ARTIFACT), run.info.run_id, tags=tags
    )


def _free_shape(array: np.ndarray) -> dict[str, Any]:
    """Shape with every size but the channels (axis 1) free: ``[-1, C, -1, ...]``."""
    shape = [-1 if axis != 1 else size for axis, size in enumerate(array.shape)]
    return {"shape": shape, "dtype": str(array.dtype)}


def _ensure_registered(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def champion(tracking: Tracking, name: str) -> ModelVersion | None:
    """The version carrying the ``champion`` alias, or None before the first promotion.

    Only "this model or alias does not exist" means no champion; any other registry error (a
    locked store, a server down) propagates, so a challenger never wins uncompared.
    """
    client = tracking.activate()
    try:
        registered = client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = registered.aliases.get(CHAMPION)
    return None if version is None else client.get_model_version(name, version)


def champion_versions(tracking: Tracking) -> dict[str, str]:
    """Per input mode with a champion, its version: the models whose rows a summary reads."""
    return {
        mode: str(found.version)
        for mode in INPUT_MODES
        if (found := champion(tracking, registered_name(mode))) is not None
    }


def promote(tracking: Tracking, name: str, version: str, reason: str) -> None:
    """Move the ``champion`` alias and record why on the version."""
    tracking.activate().set_registered_model_alias(name, CHAMPION, version)
    record_decision(tracking, name, version, reason)


def record_decision(tracking: Tracking, name: str, version: str, reason: str) -> None:
    """Record on a version why it was (not) promoted: from then on it counts for staleness."""
    tracking.activate().set_model_version_tag(name, version, DECISION_TAG, reason[:500])


def load_version(tracking: Tracking, version: ModelVersion) -> torch.nn.Module:
    """Load one registered version through the registry (``models:/name/N``), on the CPU.

    Weights-only versions are checked against their SHA-256 tags first
    (``ModelIntegrityError`` names the failed check). Versions registered before that format
    are pickles: they still load, with a ``LegacyModelWarning``, until retrained; once a model
    has a weights-only version, a pickle of it is refused (no downgrade through the registry).
    """
    client = tracking.activate()
    uri = f"models:/{version.name}/{version.version}"
    label = f"{version.name} v{version.version}"
    if version.tags.get(FORMAT_TAG) is None:
        siblings = client.search_model_versions(f"name = '{version.name}'")
        if any(FORMAT_TAG in sibling.tags for sibling in siblings):
            raise ModelIntegrityError(
                f"{label} is a pickle, but {version.name} has weights-only versions: refusing "
                "to unpickle it (format check)"
            )
        warnings.warn(
            f"{label} is a legacy pickled model: loading it runs code from the registry; "
            "retrain to store it as weights",
            LegacyModelWarning,
            stacklevel=2,
        )
        return mlflow.pytorch.load_model(uri, map_location="cpu").eval()
    expected = {file: version.tags.get(tag, "") for file, tag in SHA256_TAGS.items()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        return read_model(folder, expected, label)


def load_champion(tracking: Tracking, name: str) -> tuple[torch.nn.Module, ModelVersion]:
    """Load the champion by alias (never by a file path).

    The alias is resolved once and that version is loaded, so the files and the digests they
    are checked against belong to the same version even if the alias moves meanwhile.
    """
    version = champion(tracking, name)
    if version is None:
        raise LookupError(f"no {CHAMPION!r} version of registered model {name!r} yet")
    return load_version(tracking, version), version


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
    """The data version the newest decided version was trained on, promoted or not.

    What decides whether data is new to a model: a challenger that lost was still trained on
    it, and training again on the same scans would only repeat that result. A version without
    a recorded decision (its run died between registering and deciding) is ignored, so it
    cannot block the retraining that would decide it.
    """
    versions = tracking.activate().search_model_versions(f"name = '{name}'")
    decided = [v for v in versions if DECISION_TAG in v.tags]
    newest = max(decided, key=lambda v: int(v.version), default=None)
    return _trained_on(tracking, newest)


def _trained_on(tracking: Tracking, version: ModelVersion | None) -> str | None:
    if version is None or not version.run_id:
        return None
    return tracking.activate().get_run(version.run_id).data.tags.get(DATA_VERSION_TAG)


def recorded_metric(tracking: Tracking, version: ModelVersion, key: str) -> float | None:
    """The metric ``key`` logged on the run that produced ``version`` (None if absent)."""
    if not version.run_id:
        return None
    return tracking.activate().get_run(version.run_id).data.metrics.get(key)


def recorded_params(tracking: Tracking, version: ModelVersion) -> dict[str, str]:
    """The parameters logged on the run that produced ``version`` (empty without a run)."""
    if not version.run_id:
        return {}
    return dict(tracking.activate().get_run(version.run_id).data.params)
