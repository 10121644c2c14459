"""Asset metadata links to the MLflow UI; the UI's address follows the configuration."""

from __future__ import annotations

import dataclasses

import numpy as np

from layer_platform.classification.network import SmallCNN3D
from layer_platform.defs.mlflow_links import model_links
from layer_platform.settings import LayerPaths
from layer_platform.tracking.mlflow_links import log_training_data
from layer_platform.tracking.mlflow_registry import Tracking, log_torch_model, tracked_run


def test_links_name_the_run_and_the_version(shared_tracking: Tracking, model_name: str) -> None:
    with tracked_run(shared_tracking, "links-test", "run") as run:
        log_training_data(
            [{"scan_id": "S1", "label": "MP"}, {"scan_id": "S2", "label": "control"}], model_name
        )
        version = log_torch_model(SmallCNN3D(1, (2,)), np.zeros((1, 1, 2, 2, 2), "f4"), model_name)
    tracking = dataclasses.replace(shared_tracking, ui_url="https://mlflow.example.org")
    links = model_links(tracking, version)
    experiment = run.info.experiment_id
    assert links["mlflow_run"].value == (
        f"https://mlflow.example.org/#/experiments/{experiment}/runs/{run.info.run_id}"
    )
    assert links["mlflow_model_version"].value == (
        f"https://mlflow.example.org/#/models/{model_name}/versions/{version.version}"
    )
    assert links["mlflow_run_id"].text == run.info.run_id
    inputs = shared_tracking.activate().get_run(run.info.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, len(i.dataset.digest) > 0) for i in inputs] == [(model_name, True)]
    assert "S1" not in inputs[0].dataset.profile + inputs[0].dataset.source  # no values leave


def test_the_ui_address_is_configurable(tmp_path) -> None:
    home = str(tmp_path)
    assert Tracking.for_paths(LayerPaths.under(home)).ui_url == "http://127.0.0.1:5000"
    server = {"LAYER_HOME": home, "MLFLOW_TRACKING_URI": "http://mlflow:5000/"}
    assert Tracking.for_paths(LayerPaths.from_env(server)).ui_url == "http://mlflow:5000"
    chosen = {**server, "LAYER_MLFLOW_UI_URL": "https://ui.example/mlflow"}
    assert Tracking.for_paths(LayerPaths.from_env(chosen)).ui_url == "https://ui.example/mlflow"
