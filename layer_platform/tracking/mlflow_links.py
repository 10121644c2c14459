"""Links both ways between a Dagster materialization and the MLflow run and model it produced.

The MLflow run carries the Dagster run id and asset key as tags (find the materialization from
the model); the asset's metadata carries URLs to the run and the model version in the MLflow
UI (find the model from the materialization, ``defs/mlflow_links.py``). The training table is
logged as an MLflow dataset: its name, digest, schema and row count, not its values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from layer_platform.tracking.mlflow_registry import Tracking

RUN_ID_TAG = "dagster.run_id"
ASSET_KEY_TAG = "dagster.asset_key"
PARTITION_TAG = "dagster.partition"


def run_tags(run_id: str, asset_key: str, partition: str | None = None) -> dict[str, str]:
    """Tags for an MLflow run started by a Dagster step (``partition``: the one it trains)."""
    tags = {RUN_ID_TAG: run_id, ASSET_KEY_TAG: asset_key}
    if partition is not None:
        tags[PARTITION_TAG] = partition
    return tags


def log_training_data(rows: Sequence[Mapping[str, Any]], name: str) -> None:
    """Log the training table of the active run as an MLflow dataset (context ``training``).

    MLflow keeps a digest of the content, the schema and the row count; the rows themselves
    stay in the warehouse.
    """
    table = pd.DataFrame(list(rows))
    targets = "label" if "label" in table.columns else None
    mlflow.log_input(mlflow.data.from_pandas(table, name=name, targets=targets), "training")


def model_urls(tracking: Tracking, version: ModelVersion) -> dict[str, str]:
    """The MLflow UI addresses (at ``tracking.ui_url``) of the version's run and of the version."""
    run = tracking.activate().get_run(version.run_id)
    base = tracking.ui_url
    return {
        "run": f"{base}/#/experiments/{run.info.experiment_id}/runs/{version.run_id}",
        "model_version": f"{base}/#/models/{version.name}/versions/{version.version}",
    }
