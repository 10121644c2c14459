"""The Definitions load, and the asset graph is the one the README describes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from layer_platform.defs.definitions import build_definitions
from layer_platform.settings import LayerPaths

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load_with_every_asset_and_job(layer_paths: LayerPaths) -> None:
    defs = build_definitions(paths=layer_paths)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"cohort_manifest", "preprocessed_volume"} <= keys
    for job in ("ingest", "preprocess_scans"):
        assert defs.resolve_job_def(job) is not None
    checks = {key.name for key in graph.asset_check_keys}
    assert {"scans", "subject_labels", "finite_values", "expected_shape"} <= checks


def test_every_asset_has_a_description_group_and_kind(layer_paths: LayerPaths) -> None:
    graph = build_definitions(paths=layer_paths).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        spec = graph.get(key)
        assert spec.description, key
        assert spec.group_name != "default", key
        assert spec.kinds, key


def test_dagster_definitions_validate_passes(tmp_path: Path) -> None:
    env = {"LAYER_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_instance_reads_the_projects_dagster_yaml(layer_paths: LayerPaths) -> None:
    from layer_platform.orchestration.runner import open_instance

    instance = open_instance(layer_paths)
    assert isinstance(instance, dg.DagsterInstance)
    assert Path(instance.root_directory) == layer_paths.dagster_home
    assert (layer_paths.dagster_home / "dagster.yaml").read_text() == (
        REPO / "dagster.yaml"
    ).read_text()
    # Dead run workers are failed by the daemon and release their `warehouse` pool slots.
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
