"""The Dagster side of the MLflow links (``tracking/mlflow_links.py``): run tags from the step's
context, and asset metadata that links the materialization to its MLflow run and version."""

from __future__ import annotations

from typing import Any

import dagster as dg
from mlflow.entities.model_registry import ModelVersion

from layer_platform.tracking.mlflow_links import model_urls, run_tags
from layer_platform.tracking.mlflow_registry import Tracking


def dagster_tags(context: dg.AssetExecutionContext, partition: str | None = None) -> dict[str, str]:
    """MLflow run tags naming this Dagster run and asset (``partition``: the one it trains)."""
    return run_tags(context.run.run_id, context.asset_key.to_user_string(), partition)


def model_links(tracking: Tracking, version: ModelVersion) -> dict[str, Any]:
    """Asset metadata: URLs to the MLflow run and model version, and their ids as text."""
    urls = model_urls(tracking, version)
    return {
        "mlflow_run": dg.MetadataValue.url(urls["run"]),
        "mlflow_model_version": dg.MetadataValue.url(urls["model_version"]),
        "mlflow_run_id": dg.MetadataValue.text(version.run_id),
        "mlflow_version": dg.MetadataValue.text(str(version.version)),
    }
