"""Artifacts on object storage and analytics over Parquet: configuration only, no code change.

``LAYER_ARTIFACTS_DIR`` is set to a URL of fsspec's in-memory file system (the stand-in for
``s3://``: the same fsspec interface, and the runs execute in this process, so they share it).
``run_platform`` (``layer-platform run``) then preprocesses, segments and attributes a tiny
cohort through the real assets; every volume and map must land on that store and none on the
local disk. The warehouse is exported as Parquet to the store and queried there by DuckDB, as
an analyst past one machine would. Last, an unlabelled arrival must take one run through all
three per-scan assets, reading its neighbours' artifacts from the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import fsspec
import pytest
from upath import UPath

from layer_platform.classification.modes import INPUT_MODES
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.locations import remove_tree
from layer_platform.orchestration.pipeline import run_platform
from layer_platform.orchestration.runner import open_instance
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, arrive, simulate_cohort
from layer_platform.tracking.mlflow_registry import data_version
from layer_platform.warehouse.queries import LABELLED_PREPROCESSED
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.saliency.test_materialization import (
    TINY,
    register_classifier,
    store_predictions,
    tiny_definitions,
)

RANKING_FROM_PARQUET = """
    SELECT input_mode, method, layer, rank
    FROM read_parquet($ranking)
    WHERE rank = 1
    ORDER BY input_mode, method
"""


@dataclass
class RemoteCohort:
    bucket: UPath
    home: Path
    paths: LayerPaths
    defs: dg.Definitions
    warehouse: Warehouse
    keys: list[str]


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteCohort]:
    """A tiny cohort taken through ``run_platform`` with artifacts on the in-memory store.

    The segmenter trains for one epoch through its asset; each mode's champion is a small
    untrained CNN recorded as trained on the cohort's labelled scans (training them is the
    classifier tests' job), so ``run_platform`` sees current models, as after a real training.
    """
    bucket = UPath(f"memory://layer-{uuid.uuid4().hex}")
    home = tmp_path_factory.mktemp("remote") / "home"
    env = {"LAYER_HOME": str(home), "LAYER_ARTIFACTS_DIR": str(bucket / "artifacts")}
    paths = LayerPaths.from_env(env).ensure()
    simulate_cohort(SimulationConfig(n_subjects=3, seed=5, annotated_fraction=1.0), paths.landing)
    defs = tiny_definitions(paths)
    warehouse = Warehouse(paths.warehouse)
    try:
        built = run_platform(paths, defs=defs, until="segment_scans")
        assert not any(r.failed for r in built)
        labelled = list(warehouse.query(LABELLED_PREPROCESSED)["scan_id"])
        for seed, mode in enumerate(INPUT_MODES):
            version = register_classifier(paths, mode, seed, trained_on=data_version(labelled))
            store_predictions(warehouse, mode, version)
        rest = run_platform(paths, defs=defs)
        assert [r.job for r in rest] == ["ingest", "compute_saliency", "summarize_saliency"]
        assert not any(r.failed for r in rest)
        keys = sorted(warehouse.query("SELECT scan_id FROM scans")["scan_id"])
        yield RemoteCohort(bucket, home, paths, defs, warehouse, keys)
    finally:
        remove_tree(bucket)


@pytest.mark.slow
def test_every_artifact_lands_on_object_storage(remote: RemoteCohort) -> None:
    bucket, warehouse, keys = remote.bucket, remote.warehouse, remote.keys
    assert not (remote.home / "artifacts").exists(), "nothing may fall back to the local disk"
    for key in keys:
        folder = bucket / "artifacts" / "preprocessed" / key
        assert (folder / "bmode.nii").is_file() and (folder / "segmentation.nii").is_file()
        maps = [p.name for p in (bucket / "artifacts" / "saliency" / key).iterdir()]
        assert {f"bmode_{method}.nii.gz" for method in TINY.methods} <= set(maps)
    assert load_preprocessed(bucket / "artifacts" / "preprocessed" / keys[0]).bmode.ndim == 3
    stored = warehouse.query("SELECT path FROM segmentations")["path"]
    assert stored.str.startswith(str(bucket / "artifacts")).all()
    rows = int(
        warehouse.query("SELECT count(*) n FROM layer_saliency WHERE input_mode = 'bmode'")[
            "n"
        ].iloc[0]
    )
    assert rows == len(keys) * len(TINY.methods) * 6


@pytest.mark.slow
def test_the_warehouse_exported_as_parquet_answers_on_object_storage(
    remote: RemoteCohort,
) -> None:
    bucket, warehouse = remote.bucket, remote.warehouse
    rows = int(warehouse.query("SELECT count(*) n FROM layer_saliency")["n"].iloc[0])
    exported = warehouse.export_parquet(bucket / "warehouse")
    assert exported["layer_saliency"] == rows and exported["layer_ranking"] > 0
    con = duckdb.connect()
    con.register_filesystem(fsspec.filesystem("memory"))
    count = con.execute(
        "SELECT count(*) FROM read_parquet(?)", [str(bucket / "warehouse/layer_saliency.parquet")]
    ).fetchone()
    assert count == (rows,)
    top = con.execute(
        RANKING_FROM_PARQUET, {"ranking": str(bucket / "warehouse/layer_ranking.parquet")}
    ).fetchall()
    expected = warehouse.query(
        "SELECT input_mode, method, layer, rank FROM layer_ranking WHERE rank = 1"
        " ORDER BY input_mode, method"
    )
    assert top == list(expected.itertuples(index=False, name=None))


@pytest.mark.slow
def test_an_unlabelled_arrival_takes_one_run_through_every_per_scan_asset(
    remote: RemoteCohort,
) -> None:
    """A scan to explain retrains nothing: one ``update_scans`` run, then the summary."""
    (new,) = arrive(remote.paths.landing, 1, unlabelled=True)
    instance = open_instance(remote.paths)
    before = {
        key: instance.get_materialized_partitions(dg.AssetKey(key))
        for key in ("preprocessed_volume", "layer_segmentation", "layer_saliency")
    }

    reports = run_platform(remote.paths, defs=remote.defs)

    assert [(r.job, len(r.runs), r.partitions) for r in reports] == [
        ("ingest", 1, 0),
        ("update_scans", 1, 1),
        ("summarize_saliency", 1, 0),
    ]
    assert not any(r.failed for r in reports)
    for key, partitions in before.items():
        assert instance.get_materialized_partitions(dg.AssetKey(key)) == partitions | {new}
    rows = remote.warehouse.query(
        "SELECT count(DISTINCT input_mode) modes, count(*) n FROM layer_saliency WHERE scan_id = ?",
        [new],
    )
    assert int(rows["n"].iloc[0]) > 0
    assert (
        remote.warehouse.query("SELECT label FROM scans WHERE scan_id = ?", [new])["label"]
        .isna()
        .all()
    )
