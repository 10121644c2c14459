"""``layer_saliency`` and its summary on a temporary Dagster instance over a tiny cohort.

The segmenter trains for one epoch through its real asset; the classifiers are small untrained
CNNs registered as champions directly (training them is the classifier tests' job), with
stored predictions, so the saliency stages see what they see after `train_classifiers`. Only
``bmode`` and ``bmode_swe`` get a champion: one and two channels, and a mode without a
champion (``swe``) must simply be skipped.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest

from bench.incremental import FileReads
from layer_platform.attribution import DEFAULT_METHOD, randomization_run
from layer_platform.attribution.aggregation import NonFiniteMap
from layer_platform.attribution.champions import reference_configs
from layer_platform.attribution.data_randomization import protocol as data_randomization_protocol
from layer_platform.attribution.randomization_run import PROTOCOL, RandomizationSettings
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.modes import n_channels
from layer_platform.classification.network import FoldEnsemble, SmallCNN3D
from layer_platform.classification.splits import SplitScheme
from layer_platform.cli import main
from layer_platform.defs.assets.summary_tables import SUMMARY_ASSETS
from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.resources import SegmenterResource
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.imaging.preprocess import PreprocessConfig, load_preprocessed
from layer_platform.io import read_volume
from layer_platform.orchestration.runner import open_instance, run_job
from layer_platform.orchestration.sanity import run_sanity
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, simulate_cohort
from layer_platform.timestamps import utc_now
from layer_platform.tracking.champion_score import SPLIT_TAG
from layer_platform.tracking.mlflow_registry import (
    DATA_VERSION_TAG,
    Tracking,
    log_torch_model,
    promote,
    tracked_run,
)
from layer_platform.tracking.names import registered_name
from layer_platform.tracking.reference_store import REFERENCE_TAG, TRAINED_SCANS_ARTIFACT
from layer_platform.warehouse.pending import current_saliency, pending_saliency, summary_pending
from layer_platform.warehouse.queries import champion_rows
from layer_platform.warehouse.store import Replacement, Warehouse
from layer_platform_tests.dagster_internals import AssetCheckExecutionRecordStatus
from layer_platform_tests.docs.markdown import (
    DOCS,
    QUERY_HOWTO,
    README,
    platform_commands,
    sql_blocks,
)

#: Modes given a champion (``swe`` deliberately has none).
MODES = ("bmode", "bmode_swe")
WAREHOUSE_REFERENCE = DOCS / "reference" / "warehouse.md"
#: Smoke settings, with the faithfulness report (one random order) that smoke runs skip.
TINY = SaliencyResource(**{**SaliencyResource.smoke().model_dump(), "faithfulness_orders": 1})
SETTINGS = TINY.attribution_settings()
#: The champions' split: with these 4 subjects, some are test and some development subjects.
SPLIT = SplitScheme(n_folds=2, test_fraction=0.25, seed=6)
#: What the registered champions are (``SmallCNN3D``'s defaults) and, retrained, the least
#: training that still runs: the settings their runs log.
TINY_CLASSIFIER = ClassifierConfig(
    channels=(4, 8), dropout=0.0, pooling="avg", min_epochs=1, max_epochs=1, n_bootstrap=100
)
#: A split of the same 4 subjects with both classes in each of its two folds: champions under
#: ``SPLIT`` cannot be retrained (one fold model would see controls only).
TRAINABLE_SPLIT = SplitScheme(n_folds=2, test_fraction=0.25, seed=13)
COUNT_PER_SCAN_MODE_METHOD = """
    SELECT scan_id, input_mode, method, model_version, count(*) AS n,
           count(DISTINCT layer) AS layers
    FROM layer_saliency GROUP BY ALL
"""


@dataclass
class Cohort:
    paths: LayerPaths
    defs: dg.Definitions
    instance: dg.DagsterInstance
    keys: list[str]
    warehouse: Warehouse
    versions: dict[str, str]


def register_classifier(
    paths: LayerPaths,
    mode: str,
    seed: int,
    trained_on: str | None = None,
    scheme: SplitScheme = SPLIT,
) -> str:
    """An untrained two-member fold ensemble registered and promoted as ``mode``'s champion,
    under a two-fold hash split (``scheme``), with its training settings and every scan listed
    as its run's data (as the real trainer does); ``trained_on`` is the data version its run
    records."""
    import torch

    torch.manual_seed(seed)
    model = FoldEnsemble([SmallCNN3D(n_channels(mode), TINY_CLASSIFIER.channels) for _ in range(2)])
    grid = PreprocessConfig.preset(os.environ["LAYER_PRESET"]).target_shape  # the suite's
    example = np.zeros((1, n_channels(mode), *grid), np.float32)
    tracking = Tracking.for_paths(paths)
    tags = {DATA_VERSION_TAG: trained_on} if trained_on else None
    scans = Warehouse(paths.warehouse).query("SELECT scan_id FROM scans")["scan_id"]
    split = {SPLIT_TAG: scheme.tag()}
    params = TINY_CLASSIFIER.to_params()
    with tracked_run(tracking, "layer-classifier", mode, params=params, tags=tags):
        mlflow.log_text("\n".join(scans), TRAINED_SCANS_ARTIFACT)
        version = str(log_torch_model(model, example, registered_name(mode), split).version)
    promote(tracking, registered_name(mode), version, "test champion")
    return version


def store_predictions(warehouse: Warehouse, mode: str, version: str) -> None:
    """Held-out calls for every scan: MP scans called right, controls too."""
    scans = warehouse.query("SELECT scan_id, label FROM scans")
    now = utc_now()
    rows = [
        {
            "scan_id": r.scan_id,
            "input_mode": mode,
            "model_name": registered_name(mode),
            "model_version": version,
            "fold_role": "test",
            "probability": 0.8 if r.label == "MP" else 0.2,
            "computed_at": now,
        }
        for r in scans.itertuples()
    ]
    scope = {"input_mode": mode, "model_version": version}
    name = registered_name(mode)
    warehouse.replace("predictions", rows, key="model_name", keys=[name], scope=scope)
    metric = {**scope, "model_name": name, "fold": "test", "metric": "threshold", "value": 0.5}
    warehouse.replace(
        "model_metrics",
        [{**metric, "computed_at": now}],
        key="model_name",
        keys=[name],
        scope=scope,
    )


def tiny_definitions(paths: LayerPaths) -> dg.Definitions:
    """The platform's definitions with a one-epoch segmenter and the smoke saliency settings."""
    base = build_definitions(paths=paths)
    return dg.Definitions(
        assets=base.assets,
        jobs=base.jobs,
        resources={**base.resources, "segmenter": SegmenterResource(epochs=1), "saliency": TINY},
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    paths = LayerPaths.under(tmp_path_factory.mktemp("saliency") / "home").ensure()
    simulate_cohort(SimulationConfig(n_subjects=4, seed=5, annotated_fraction=1.0), paths.landing)
    defs = tiny_definitions(paths)
    instance = open_instance(paths)
    warehouse = Warehouse(paths.warehouse)
    assert not run_job(defs, instance, "ingest").failed
    keys = sorted(warehouse.query("SELECT scan_id FROM scans")["scan_id"])
    for job in ("preprocess_scans", "train_segmenter", "segment_scans"):
        partitioned = job != "train_segmenter"
        report = run_job(defs, instance, job, partition_keys=keys if partitioned else None)
        assert not report.failed, job
    versions = {}
    for seed, mode in enumerate(MODES):
        versions[mode] = register_classifier(paths, mode, seed)
        store_predictions(warehouse, mode, versions[mode])
    return Cohort(paths, defs, instance, keys, warehouse, versions)


def _ensure_summary(cohort: Cohort) -> None:
    """Saliency rows and the summary, when an earlier test has not made them (run alone)."""
    if not summary_pending(cohort.warehouse, cohort.versions) and _count(cohort.warehouse):
        return
    run = run_job(cohort.defs, cohort.instance, "compute_saliency", partition_keys=cohort.keys)
    assert not run.failed
    assert not run_job(cohort.defs, cohort.instance, "summarize_saliency").failed


def _explained_out_of_sample(cohort: Cohort) -> dict[str, str]:
    """Every row's explainer never trained on its scan, and its reference is the one stored
    with the champion version; returns each mode's reference SHA-256 (#16)."""
    rows = cohort.warehouse.query(
        "SELECT DISTINCT subject_id, input_mode, model_version, explained_by, reference_sha256"
        " FROM layer_saliency"
    )
    client = Tracking.for_paths(cohort.paths).activate()
    stored = {
        mode: client.get_model_version(registered_name(mode), version).tags[REFERENCE_TAG]
        for mode, version in cohort.versions.items()
    }
    for row in rows[rows["model_version"] == rows["input_mode"].map(cohort.versions)].itertuples():
        held_out = SPLIT.assign(row.subject_id) is None
        assert row.explained_by == ("held_out" if held_out else "out_of_fold")
        assert row.reference_sha256 in (None, stored[row.input_mode])
    assert set(rows["explained_by"]) == {"held_out", "out_of_fold"}
    bmode = rows[rows["input_mode"] == "bmode"]
    assert (bmode["reference_sha256"] == stored["bmode"]).all()
    return stored


#: Each scan and mode's newest row (what a kept mode leaves unchanged).
STAMPS = (
    "SELECT scan_id, input_mode, max(computed_at) AS t FROM layer_saliency"
    " GROUP BY ALL ORDER BY ALL"
)


def _count(warehouse: Warehouse, where: str = "true") -> int:
    return int(warehouse.query(f"SELECT count(*) AS n FROM layer_saliency WHERE {where}")["n"][0])


def _assert_table_metadata(cohort: Cohort, asset: str, main: str, *others: str) -> None:
    """``asset``'s latest materialization carries ``main``'s column schema (as DuckDB declares
    it) and row count, and the row count of every other table it writes."""
    event = cohort.instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None and event.asset_materialization is not None, asset
    metadata = event.asset_materialization.metadata
    columns = cohort.warehouse.query(f"DESCRIBE {main}")["column_name"].tolist()
    schema = metadata["dagster/column_schema"].value
    assert [column.name for column in schema.columns] == columns, asset
    for table, key in ((main, "dagster/row_count"), *((t, f"{t}/row_count") for t in others)):
        n = int(cohort.warehouse.query(f"SELECT count(*) AS n FROM {table}")["n"][0])
        assert metadata[key].value == n, (asset, key)


def _check_status(instance: dg.DagsterInstance, asset: str, check: str):
    key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    return instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key].status


@pytest.mark.slow
def test_saliency_rows_are_idempotent_complete_and_summarized(cohort: Cohort) -> None:
    warehouse, keys = cohort.warehouse, cohort.keys
    assert pending_saliency(warehouse, cohort.versions, SETTINGS) == keys

    first = run_job(cohort.defs, cohort.instance, "compute_saliency", partition_keys=keys)
    assert not first.failed and len(first.runs) == 1, "one batched run for every scan"
    n_rows = _count(warehouse)
    with_swe = int(
        warehouse.query("SELECT count(*) AS n FROM preprocessing WHERE swe_valid_fraction > 0")[
            "n"
        ][0]
    )
    assert n_rows == 6 * len(TINY.methods) * (len(keys) + with_swe)
    counts = warehouse.query(COUNT_PER_SCAN_MODE_METHOD)
    assert (counts["n"] == 6).all() and (counts["layers"] == 6).all()
    assert pending_saliency(warehouse, cohort.versions, SETTINGS) == []
    # rows computed under other attribution settings are stale: recomputed, never kept
    assert pending_saliency(warehouse, cohort.versions, "ig_steps=99") == keys
    assert current_saliency(warehouse, cohort.versions, keys, list(TINY.methods), SETTINGS)
    assert not current_saliency(warehouse, cohort.versions, keys, list(TINY.methods), "ig_steps=99")
    references = _explained_out_of_sample(cohort)

    stamps = warehouse.query(STAMPS)
    second = run_job(cohort.defs, cohort.instance, "compute_saliency", partition_keys=keys)
    assert not second.failed
    assert _count(warehouse) == n_rows, "re-materializing replaces rows, never duplicates"
    pd.testing.assert_frame_equal(warehouse.query(STAMPS), stamps, obj="up-to-date modes kept")
    # a scan an interruption left half done: only its missing mode is attributed, and its map
    # folder keeps the other modes' maps
    scan = keys[0]
    warehouse.replace_all(
        [
            Replacement(
                "layer_saliency", [], key="scan_id", keys=[scan], scope={"input_mode": "bmode_swe"}
            )
        ]
    )
    maps_before = sorted(p.name for p in (cohort.paths.artifacts / "saliency" / scan).rglob("*"))
    assert not run_job(
        cohort.defs, cohort.instance, "compute_saliency", partition_keys=[scan]
    ).failed
    now = warehouse.query(STAMPS).merge(stamps, on=["scan_id", "input_mode"], how="left")
    redone = now[now["t_x"] != now["t_y"]]
    assert redone[["scan_id", "input_mode"]].values.tolist() == [[scan, "bmode_swe"]]
    assert sorted(p.name for p in (cohort.paths.artifacts / "saliency" / scan).rglob("*")) == (
        maps_before
    )
    # keep_current=False recomputes every mode (after a change of the attribution code)
    recompute = dg.Definitions(
        assets=cohort.defs.assets,
        jobs=cohort.defs.jobs,
        resources={
            **cohort.defs.resources,
            "saliency": SaliencyResource(**{**TINY.model_dump(), "keep_current": False}),
        },
    )
    assert not run_job(recompute, cohort.instance, "compute_saliency", partition_keys=[scan]).failed
    again = warehouse.query(STAMPS).merge(now, on=["scan_id", "input_mode"])
    assert (again[again["scan_id"] == scan]["t"] > again[again["scan_id"] == scan]["t_x"]).all()
    assert _count(warehouse) == n_rows
    assert len(warehouse.query(COUNT_PER_SCAN_MODE_METHOD)) == len(counts)
    assert _explained_out_of_sample(cohort) == references, "a re-run keeps the reference"
    for check in ("rows_complete", "finite_values", "segmentation_qc", "gx_layer_saliency"):
        status = _check_status(cohort.instance, "layer_saliency", check)
        assert status == AssetCheckExecutionRecordStatus.SUCCEEDED, check

    # ablation rows carry only the delta; map rows' shares add up to 1
    ablation = warehouse.query(
        "SELECT count(*) FILTER (WHERE mean_saliency IS NOT NULL OR saliency_share IS NOT NULL)"
        " AS filled, count(*) FILTER (WHERE ablation_delta IS NULL AND n_voxels > 0) AS missing"
        " FROM layer_saliency WHERE method = 'layer_ablation'"
    )
    assert ablation.iloc[0].tolist() == [0, 0]
    # layer ablation per modality in bmode_swe only, and the joint drops of the layer-value
    # methods (#16 items 5 and 7)
    extra = warehouse.query(
        "SELECT input_mode, method, count(ablation_delta_bmode) AS bmode,"
        " count(ablation_delta_swe) AS swe, count(*) FILTER (WHERE n_voxels > 0) AS present,"
        " count(joint_ablation_delta) AS joint FROM layer_saliency GROUP BY ALL"
    ).set_index(["input_mode", "method"])
    per_modality = extra.loc[("bmode_swe", "layer_ablation")]
    assert per_modality["bmode"] == per_modality["swe"] == per_modality["present"] > 0
    assert extra.drop(index=[("bmode_swe", "layer_ablation")])[["bmode", "swe"]].eq(0).all().all()
    assert (extra.xs("layer_ablation", level="method")["joint"] > 0).all()
    assert extra[extra.index.get_level_values("method") != "layer_ablation"]["joint"].eq(0).all()
    # SWE coverage on every present layer of the SWE mode, none in bmode (#16 item 8)
    coverage = warehouse.query(
        "SELECT input_mode, count(swe_coverage) AS n, count(*) FILTER (WHERE n_voxels > 0)"
        " AS present, min(swe_coverage) AS low, max(swe_coverage) AS high"
        " FROM layer_saliency GROUP BY ALL"
    ).set_index("input_mode")
    assert coverage.loc["bmode", "n"] == 0
    found = coverage.loc["bmode_swe"]
    assert found["n"] == found["present"] > 0 and 0 <= found["low"] <= found["high"] <= 1
    # boundary sensitivity (#17): maps re-aggregated, layer ablation's perturbed masks ablated
    boundary = warehouse.query(
        "SELECT method, count(mean_saliency_dilated) AS maps, count(ablation_delta_dilated)"
        " AS ablated FROM layer_saliency GROUP BY ALL"
    ).set_index("method")
    assert boundary.loc[DEFAULT_METHOD, "ablated"] > 0 == boundary.loc[DEFAULT_METHOD, "maps"]
    maps = boundary.drop(index=DEFAULT_METHOD)
    assert (maps["maps"] > 0).all() and (maps["ablated"] == 0).all()
    shares = warehouse.query(
        "SELECT sum(saliency_share) AS s FROM layer_saliency"
        " WHERE method <> 'layer_ablation' GROUP BY scan_id, input_mode, method"
    )
    np.testing.assert_allclose(shares["s"].dropna(), 1.0, atol=1e-6)
    diagnostics = warehouse.query(
        "SELECT DISTINCT metric FROM attribution_diagnostics WHERE method = 'integrated_gradients'"
    )
    assert {"completeness_error", "convergence_delta", "seconds"} <= set(diagnostics["metric"])

    # maps on the B-mode's grid
    scan = keys[0]
    saved_name = "bmode_saliency.nii.gz"
    saved = read_volume(cohort.paths.artifacts / "saliency" / scan / saved_name)
    stored = load_preprocessed(cohort.paths.artifacts / "preprocessed" / scan)
    assert saved.shape == stored.bmode.shape
    np.testing.assert_allclose(saved.spacing, stored.spacing, rtol=1e-5)
    # ... and on the scan's own grid, with its geometry (imaging.native)
    assert stored.grid is not None
    native = read_volume(cohort.paths.artifacts / "saliency" / scan / "native" / saved_name)
    assert native.shape == stored.grid.native_shape
    np.testing.assert_allclose(native.origin, stored.grid.native_origin, atol=1e-4)
    segmentation = cohort.paths.artifacts / "preprocessed" / scan / "native" / "segmentation"
    assert read_volume(f"{segmentation}.nii.gz").shape == stored.grid.native_shape
    assert Path(f"{segmentation}.seg.nrrd").is_file()

    assert summary_pending(warehouse, cohort.versions)
    with FileReads(cohort.paths.artifacts) as reads:
        summary = run_job(cohort.defs, cohort.instance, "summarize_saliency")
    assert not summary.failed
    # the statistics are SQL over layer_saliency: the refresh opens no voxel map (it reads
    # preprocessed volumes for the model-randomization check only)
    opened = {path.relative_to(cohort.paths.artifacts).parts[0] for _, path in reads.reads}
    assert "saliency" not in opened and "preprocessed" in opened
    assert not summary_pending(warehouse, cohort.versions)
    ranking = warehouse.query("SELECT * FROM layer_ranking")
    assert set(ranking["input_mode"]) == set(MODES)
    assert (ranking.groupby(["input_mode", "method"]).size() == 6).all()
    assert set(ranking[ranking["is_default_method"]]["method"]) == {DEFAULT_METHOD}
    subgroups = warehouse.query("SELECT DISTINCT subgroup FROM layer_summary")["subgroup"]
    assert set(subgroups) == {"all", "MP", "control", "MP_correct"}
    recovery = warehouse.query("SELECT * FROM driver_recovery")
    assert len(recovery) == len(TINY.methods) * 3  # bmode's driver, both drivers of bmode_swe
    assert set(recovery["planted_layer"]) == {"deep_fascia", "muscle"}
    status = _check_status(cohort.instance, "layer_ranking", "summary_non_empty")
    assert status == AssetCheckExecutionRecordStatus.SUCCEEDED
    # faithfulness on the held-out scans, per mode, method and removal, shown beside the ranking
    faithful = warehouse.query("SELECT * FROM method_faithfulness")
    held = warehouse.query(
        "SELECT input_mode, count(DISTINCT scan_id) AS n FROM layer_saliency"
        " WHERE explained_by = 'held_out' GROUP BY ALL"
    )
    assert set(faithful["input_mode"]) == set(held["input_mode"]) and len(held)
    assert set(faithful["method"]) <= set(TINY.methods) and set(faithful["variant"]) == {
        "deletion",
        "road",
    }
    ablation = faithful[faithful["method"] == DEFAULT_METHOD]
    assert len(ablation) == 2 * len(held)
    assert (ablation["n_scans"] == ablation["input_mode"].map(dict(held.values))).all()
    assert faithful["mean_area"].between(-1, 1).all()
    event = cohort.instance.get_latest_materialization_event(dg.AssetKey("layer_ranking"))
    assert (
        "| bmode | layer_ablation |" in event.asset_materialization.metadata["faithfulness"].value
    )
    for table in SUMMARY_ASSETS:  # each table its own asset, with DuckDB's columns and rows
        _assert_table_metadata(cohort, table, table)
    _assert_table_metadata(cohort, "layer_saliency", "layer_saliency", "attribution_diagnostics")
    _assert_table_metadata(cohort, "cohort_manifest", "scans", "landing_index")

    # gates: 4 subjects cannot show skill by permutation (best p 1/6), so nothing stands out
    assert not ranking["stands_out"].any()
    assert ranking["verdict"].str.startswith("no layer stands out: the classifier").all()
    assert (ranking["boundary_sensitivity"] == "not applicable").all(), "no claim to test"
    sums = ranking.groupby(["input_mode", "method"])["p_rank1"].sum()
    assert np.allclose(sums, 1.0)
    comparison = warehouse.query("SELECT * FROM layer_comparison WHERE subgroup = 'all'")
    assert comparison[["non_muscle_mean", "muscle_mean"]].notna().all().all()
    ablation_metrics = comparison.loc[comparison["method"] == DEFAULT_METHOD, "metric"]
    assert set(ablation_metrics) <= {"joint_ablation_delta"}
    metrics = warehouse.query(
        "SELECT DISTINCT input_mode, metric FROM layer_summary WHERE method = 'layer_ablation'"
    )
    assert set(metrics.itertuples(index=False, name=None)) == {
        ("bmode", "ablation_delta"),
        ("bmode_swe", "ablation_delta"),
        ("bmode_swe", "ablation_delta_bmode"),
        ("bmode_swe", "ablation_delta_swe"),
    }

    # the randomization verdict belongs to a champion version: a second refresh reuses it
    checked = warehouse.query("SELECT * FROM randomization_checks ORDER BY input_mode, method")
    # by default the gate is run for the headline (default) method only
    assert len(checked) == len(MODES) and set(checked["method"]) == {TINY.default_method}
    # stored with the attribution settings it ran with: other settings make it stale
    assert (checked["protocol"] == f"{PROTOCOL} {TINY.attribution_settings()}").all()
    assert checked["cascade"].notna().all()
    shifted = SaliencyResource(**{**TINY.model_dump(), "reference_matching": "mean_shift"})
    assert shifted.attribution_settings() != TINY.attribution_settings()
    # 2 scans of 4 subjects cannot decide (MIN_DECISIVE_SCANS): the check warns, the gate
    # reads "not run"
    status = _check_status(cohort.instance, "randomization_checks", "model_randomization")
    assert status == AssetCheckExecutionRecordStatus.FAILED
    assert dict(zip(checked["input_mode"], checked["model_version"], strict=True)) == (
        cohort.versions
    )
    assert not run_job(cohort.defs, cohort.instance, "summarize_saliency").failed
    again = warehouse.query("SELECT * FROM randomization_checks ORDER BY input_mode, method")
    assert again["computed_at"].tolist() == checked["computed_at"].tolist()


@pytest.mark.slow
def test_documented_queries_run_read_only(cohort: Cohort) -> None:
    """Every SQL block of the README and of the query how-to (the cookbook) runs as written."""
    _ensure_summary(cohort)
    readme, cookbook = sql_blocks(README), sql_blocks(QUERY_HOWTO)
    assert len(readme) >= 1 and len(cookbook) >= 9
    with duckdb.connect(str(cohort.paths.warehouse), read_only=True) as con:
        for sql in readme + cookbook:
            result = con.execute(sql).fetch_df()
            assert len(result) > 0, sql


@pytest.mark.slow
def test_documented_warehouse_commands_run(cohort: Cohort, tmp_path: Path) -> None:
    """The documented read-only ``layer-platform`` lines run as written, in a shell, from a folder
    whose ``.layer_home`` is this cohort's, and the snapshot they take opens on its own."""
    _ensure_summary(cohort)
    (tmp_path / ".layer_home").symlink_to(cohort.paths.home)
    commands = platform_commands(QUERY_HOWTO) + platform_commands(WAREHOUSE_REFERENCE)
    assert len(commands) >= 6
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAYER_")}
    env |= {"PATH": f"{bin_dir}:{env['PATH']}", "HOME": str(tmp_path)}
    for line in commands:
        done = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (line, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, line
    snapshot = tmp_path / "layer-analysis.duckdb"
    with duckdb.connect(str(snapshot), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM layer_ranking").fetchone()[0] > 0


@pytest.mark.slow
def test_ranking_command_prints_every_mode(
    cohort: Cohort, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _ensure_summary(cohort)
    monkeypatch.setenv("LAYER_HOME", str(cohort.paths.home))
    assert main(["ranking"]) == 0
    out = capsys.readouterr().out
    assert "layer-classifier-bmode v" in out and "layer-classifier-bmode_swe v" in out
    assert f"{DEFAULT_METHOD}*" in out and "integrated_gradients" in out
    assert "    faithfulness on " in out and " held-out scans: deletion " in out
    assert main(["ranking", "--method", "layer_ablation"]) == 0
    assert "integrated_gradients" not in capsys.readouterr().out


def test_ranking_command_before_any_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAYER_HOME", str(tmp_path))
    assert main(["ranking"]) == 3  # WarehouseMissing: one line on stderr
    assert "no warehouse" in capsys.readouterr().err
    Warehouse(LayerPaths.under(tmp_path).warehouse).ensure_schema()
    assert main(["ranking"]) == 0, "an empty ranking is not an error (no champion yet)"
    assert "no layer ranking yet" in capsys.readouterr().out


@pytest.mark.slow
def test_failed_qc_and_a_new_champion(cohort: Cohort) -> None:
    warehouse, keys = cohort.warehouse, cohort.keys
    if _count(warehouse) == 0:
        run_job(cohort.defs, cohort.instance, "compute_saliency", partition_keys=keys)
    failing = keys[0]
    before = _count(warehouse)
    mine = _count(warehouse, f"scan_id = '{failing}'")
    with duckdb.connect(str(cohort.paths.warehouse)) as con:
        con.execute("UPDATE segmentations SET qc_passed = false WHERE scan_id = ?", [failing])
    assert pending_saliency(warehouse, cohort.versions, SETTINGS) == [failing]
    assert not run_job(
        cohort.defs, cohort.instance, "compute_saliency", partition_keys=[failing]
    ).failed
    assert _count(warehouse, f"scan_id = '{failing}'") == 0
    assert _count(warehouse) == before - mine
    assert not (cohort.paths.artifacts / "saliency" / failing).exists()
    status = _check_status(cohort.instance, "layer_saliency", "segmentation_qc")
    assert status == AssetCheckExecutionRecordStatus.FAILED

    old = cohort.versions["bmode"]
    new = register_classifier(cohort.paths, "bmode", seed=42)
    versions = {**cohort.versions, "bmode": new}
    pending = pending_saliency(warehouse, versions, SETTINGS)
    # every QC-passed scan needs rows for the new bmode champion; the QC-failed one rides
    # along without work, so the keys stay one contiguous batch
    assert pending == keys
    assert not run_job(
        cohort.defs, cohort.instance, "compute_saliency", partition_keys=pending
    ).failed
    by_version = warehouse.query(
        "SELECT model_version, count(DISTINCT scan_id) AS n FROM layer_saliency"
        " WHERE input_mode = 'bmode' GROUP BY ALL"
    )
    assert dict(zip(by_version["model_version"], by_version["n"], strict=True)) == {
        old: len(keys) - 1,
        new: len(keys) - 1,
    }, "an older version's rows are kept beside the new champion's"
    assert summary_pending(warehouse, versions)
    assert not run_job(cohort.defs, cohort.instance, "summarize_saliency").failed
    ranked = warehouse.query(
        "SELECT DISTINCT model_version FROM layer_ranking WHERE input_mode = 'bmode'"
    )
    assert ranked["model_version"].tolist() == [new]
    references = warehouse.query(
        "SELECT model_version, count(DISTINCT reference_sha256) AS n,"
        " any_value(reference_sha256) AS sha FROM layer_saliency"
        " WHERE input_mode = 'bmode' GROUP BY ALL"
    ).set_index("model_version")
    assert (references["n"] == 1).all(), "one frozen reference per champion version"
    assert references.loc[new, "sha"] != references.loc[old, "sha"], "a new champion, a new one"


def _second_instance(cohort: Cohort, home: Path) -> LayerPaths:
    """A new MLflow store and a copy of the cohort's warehouse, over the cohort's artifacts
    (which the sanity check only reads)."""
    paths = dataclasses.replace(LayerPaths.under(home), artifacts=cohort.paths.artifacts)
    paths.ensure()
    for suffix in ("", ".wal"):
        source = Path(f"{cohort.paths.warehouse}{suffix}")
        if source.exists():
            shutil.copy2(source, f"{paths.warehouse}{suffix}")
    return paths


@pytest.mark.slow
def test_sanity_checks_each_champion_version_once(
    cohort: Cohort, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``layer-platform sanity`` retrains each champion on permuted labels and stores one row
    per mode and method; a second run reuses them without training anything."""
    paths = _second_instance(cohort, tmp_path / "home")
    versions = {
        mode: register_classifier(paths, mode, seed, scheme=TRAINABLE_SPLIT)
        for seed, mode in enumerate(MODES)
    }
    first = run_sanity(paths, saliency=TINY)
    assert first.retrained == list(MODES) and first.reused == []
    assert first.not_run == {"swe": "no champion"}
    warehouse = Warehouse(paths.warehouse)
    query = "SELECT * FROM data_randomization_checks ORDER BY input_mode, method"
    stored = warehouse.query(query)
    assert list(zip(stored["input_mode"], stored["method"], strict=True)) == [
        (mode, TINY.default_method) for mode in sorted(MODES)
    ]
    assert dict(zip(stored["input_mode"], stored["model_version"], strict=True)) == versions
    assert (stored["permutation_seed"] == 0).all()
    # it judges the subgroup the ranking reads (MP subjects by default), stored as its own
    assert (stored["protocol"] == data_randomization_protocol(TINY.ranking_group)).all()
    assert (
        TINY.ranking_group == "MP" and data_randomization_protocol("all") != stored["protocol"][0]
    )
    # 21 candidate claims (six layers, 15 pairs) per view: bmode_swe's ablation adds one view
    # per modality
    views = {"bmode": 1, "bmode_swe": 3}
    assert dict(zip(stored["input_mode"], stored["n_tests"], strict=True)) == {
        mode: 21 * views[mode] for mode in stored["input_mode"]
    }
    # 4 subjects cannot give a standing-out layer (gate 4 needs 9): the check passes
    assert stored["passed"].all() and stored["standout_layer"].isna().all()
    assert stored["n_subjects"].between(2, 4).all()

    again = run_sanity(paths, saliency=TINY)
    assert again.retrained == [] and again.reused == list(MODES)
    for name, value in paths.to_env().items():
        monkeypatch.setenv(name, value)
    assert main(["sanity"]) == 0  # the platform's own saliency settings: same methods, seed 0
    lines = capsys.readouterr().out.splitlines()
    for mode in MODES:
        line = next(x for x in lines if x.startswith(f"{mode}/{TINY.default_method} "))
        assert "passed: no layer stands out" in line and line.endswith("reused)"), line
    assert "swe" in lines[-1] and "not run: no champion" in lines[-1]
    assert warehouse.query(query)["computed_at"].tolist() == stored["computed_at"].tolist()
    assert main(["sanity", "--methods", "no_such_method"]) == 2


def test_a_mode_whose_randomized_maps_are_not_finite_reads_not_run(
    cohort: Cohort, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-finite map while one mode's sample is re-attributed leaves that mode's check not
    run (its verdicts read so); the other modes are checked, and nothing is raised."""
    _ensure_summary(cohort)
    paths = _second_instance(cohort, tmp_path / "home")
    warehouse = Warehouse(paths.warehouse)
    tracking = Tracking.for_paths(cohort.paths)
    real, calls = randomization_run.randomize_mode, []

    def first_mode_not_finite(*args: object, **kwargs: object) -> dict:
        calls.append(1)
        if len(calls) == 1:
            raise NonFiniteMap("attribution map contains NaN or infinite values")
        return real(*args, **kwargs)

    monkeypatch.setattr(randomization_run, "randomize_mode", first_mode_not_finite)
    outcome = randomization_run.champion_randomization(
        champion_rows(warehouse, cohort.versions),
        cohort.versions,
        tracking=tracking,
        warehouse=warehouse,
        paths=paths,
        # a protocol no stored verdict has: every mode is computed here, none reused
        settings=RandomizationSettings([TINY.default_method], 0.8, 2, protocol="non-finite"),
        config_for=reference_configs(
            TINY.attribution_config, TINY.baseline, warehouse, paths, tracking
        ),
    )
    first, *others = list(cohort.versions)
    assert outcome.non_finite == [first] and others
    assert set(outcome.results) == {f"{mode}/{TINY.default_method}" for mode in others}
