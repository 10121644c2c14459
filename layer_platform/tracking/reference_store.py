"""A champion's frozen attribution reference, stored as an MLflow artifact of its run.

Built on first use and never again for that version: a re-run or an arriving scan reads the
same bytes back, checked against the SHA-256 recorded on the version (``REFERENCE_TAG``); a
new champion (a new version) gets its own. What the reference holds is
``attribution.cohort_reference``'s concern; this module only stores and checks bytes.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from layer_platform.tracking.mlflow_registry import Tracking
from layer_platform.tracking.model_files import ModelIntegrityError

REFERENCE_ARTIFACT = "reference/cohort_reference.json"
REFERENCE_TAG = "layer.reference_sha256"
#: The scans a classifier run trained and was tested on (logged by ``pain_classifier``).
TRAINED_SCANS_ARTIFACT = "data/scan_ids.txt"


def _download(run_id: str, artifact: str) -> bytes | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact, dst_path=tmp
            )
        except (MlflowException, OSError):
            return None
        return Path(path).read_bytes()


def trained_scans(run_id: str | None) -> frozenset[str] | None:
    """The scans a classifier run lists as its data (None: no run, or none listed)."""
    listed = _download(run_id, TRAINED_SCANS_ARTIFACT) if run_id else None
    return None if listed is None else frozenset(listed.decode().split())


def stored_reference(
    tracking: Tracking,
    name: str,
    version: str,
    build: Callable[[frozenset[str]], bytes | None],
) -> bytes | None:
    """The version's reference bytes: read back (hash-checked), or built from the scans its run
    trained on by ``build`` and stored. None when its run lists no scans (a model registered
    by hand) or ``build`` finds no controls: the caller then uses no cohort reference.

    Raises:
        ModelIntegrityError: the stored artifact is not the one whose hash the version records.
    """
    client = tracking.activate()
    model_version = client.get_model_version(name, version)
    run_id = model_version.run_id
    recorded = model_version.tags.get(REFERENCE_TAG)
    if recorded:
        data = _download(run_id, REFERENCE_ARTIFACT)
        if data is None or hashlib.sha256(data).hexdigest() != recorded:
            raise ModelIntegrityError(
                f"{name} v{version}: SHA-256 check of {REFERENCE_ARTIFACT} failed; "
                "refusing to use it"
            )
        return data
    listed = trained_scans(run_id)
    if listed is None:
        return None
    data = build(listed)
    if data is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        path.write_bytes(data)
        client.log_artifact(run_id, str(path), str(Path(REFERENCE_ARTIFACT).parent))
    client.set_model_version_tag(name, version, REFERENCE_TAG, hashlib.sha256(data).hexdigest())
    return data
