"""Artifacts on object storage and analytics over Parquet: configuration only, no code change.

``LAYER_ARTIFACTS_DIR`` is set to a URL of fsspec's in-memory file system (the stand-in for
``s3://``: the same fsspec interface, and the runs execute in this process, so they share it).
The real assets then preprocess, segment and attribute a tiny cohort; every volume and map
must land on that store and none on the local disk. The warehouse is then exported as Parquet
to the store and queried there by DuckDB, as an analyst past one machine would.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import duckdb
import fsspec
import pytest
from upath import UPath

from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.resources import SegmenterResource
from layer_platform.defs.runner import open_instance, run_job
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.locations import remove_tree
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, simulate_cohort
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.saliency.test_materialization import (
    register_classifier,
    store_predictions,
)

RANKING_FROM_PARQUET = """
    SELECT input_mode, method, layer, rank
    FROM read_parquet($ranking)
    WHERE rank = 1
    ORDER BY input_mode, method
"""


@pytest.mark.slow
def test_the_chain_runs_with_artifacts_on_object_storage(tmp_path: Path) -> None:
    bucket = UPath(f"memory://layer-{uuid.uuid4().hex}")
    home = tmp_path / "home"
    env = {"LAYER_HOME": str(home), "LAYER_ARTIFACTS_DIR": str(bucket / "artifacts")}
    paths = LayerPaths.from_env(env).ensure()
    try:
        simulate_cohort(
            SimulationConfig(n_subjects=3, seed=5, annotated_fraction=1.0), paths.landing
        )
        base = build_definitions(paths=paths)
        tiny = SaliencyResource.smoke()
        defs = dg.Definitions(
            assets=base.assets,
            jobs=base.jobs,
            resources={
                **base.resources,
                "segmenter": SegmenterResource(epochs=1),
                "saliency": tiny,
            },
        )
        instance = open_instance(paths)
        warehouse = Warehouse(paths.warehouse)
        assert not run_job(defs, instance, "ingest").failed
        keys = sorted(warehouse.query("SELECT scan_id FROM scans")["scan_id"])
        for job in ("preprocess_scans", "train_segmenter", "segment_scans"):
            partitioned = job != "train_segmenter"
            report = run_job(defs, instance, job, partition_keys=keys if partitioned else None)
            assert not report.failed, job
        version = register_classifier(paths, "bmode", seed=0)
        store_predictions(warehouse, "bmode", version)
        assert not run_job(defs, instance, "compute_saliency", partition_keys=keys).failed
        assert not run_job(defs, instance, "summarize_saliency").failed

        assert not (home / "artifacts").exists(), "nothing may fall back to the local disk"
        for key in keys:
            folder = bucket / "artifacts" / "preprocessed" / key
            assert (folder / "bmode.nii").is_file() and (folder / "segmentation.nii").is_file()
            maps = [p.name for p in (bucket / "artifacts" / "saliency" / key).iterdir()]
            assert {f"bmode_{method}.nii.gz" for method in tiny.methods} <= set(maps)
        assert load_preprocessed(bucket / "artifacts" / "preprocessed" / keys[0]).bmode.ndim == 3
        stored = warehouse.query("SELECT path FROM segmentations")["path"]
        assert stored.str.startswith(str(bucket / "artifacts")).all()
        rows = warehouse.query("SELECT count(*) n FROM layer_saliency")["n"].iloc[0]
        assert rows == len(keys) * len(tiny.methods) * 6

        exported = warehouse.export_parquet(bucket / "warehouse")
        assert exported["layer_saliency"] == rows and exported["layer_ranking"] > 0
        con = duckdb.connect()
        con.register_filesystem(fsspec.filesystem("memory"))
        count = con.execute(
            "SELECT count(*) FROM read_parquet(?)",
            [str(bucket / "warehouse/layer_saliency.parquet")],
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
    finally:
        remove_tree(bucket)
