"""The real assets on a temporary Dagster instance over a tiny simulated cohort.

A corrupt scan and a DICOM carrying patient identifiers are mixed into the landing zone: the
first must be quarantined while the cohort goes on, the second must leave no trace of PHI.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from mlflow.entities.model_registry import ModelVersion

from layer_platform.classification.network import FoldEnsemble
from layer_platform.defs.assets.ingestion import cohort_manifest
from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.partitions import SCANS
from layer_platform.defs.resources import ClassifierResource, SegmenterResource
from layer_platform.io.dicom import write_dicom
from layer_platform.orchestration.pipeline import run_platform
from layer_platform.orchestration.runner import open_instance, run_job
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, simulate_cohort, simulate_scan
from layer_platform.tracking.mlflow_registry import Tracking, champion, load_version
from layer_platform.warehouse.queries import SPLIT_BY_SITE
from layer_platform.warehouse.store import Warehouse

PHI = {"PatientName": "ZZTEST^PLANTED", "PatientID": "PID-93817", "PatientBirthDate": "19510704"}
N_SUBJECTS = 8


def landing_with_bad_and_phi_scans(paths: LayerPaths) -> int:
    """A small cohort plus one truncated scan and one PHI-carrying DICOM; returns good scans."""
    config = SimulationConfig(n_subjects=N_SUBJECTS, seed=11)
    truth = simulate_cohort(config, paths.landing)
    broken = next(p for p in sorted(paths.landing.iterdir()) if list(p.glob("bmode.*")))
    bmode = next(broken.glob("bmode.*"))
    bmode.write_bytes(bmode.read_bytes()[:100])

    phi = paths.landing / "PHI-1"
    phi.mkdir()
    scan = simulate_scan(config, N_SUBJECTS + 5, "left")
    write_dicom(phi / "bmode.dcm", scan.bmode.array, scan.bmode.spacing, extra=PHI)
    (phi / "scan.json").write_text(
        '{"scan_id": "PHI-1", "subject_id": "PHI-SUBJ", "label": "control"}'
    )
    return len(truth.scans)  # the broken one is replaced by the PHI scan


def phi_found_under(root: Path) -> list[str]:
    hits = []
    needles = [v.encode() for v in PHI.values()] + [b"ZZTEST"]
    for path in root.rglob("*"):
        if path.is_file() and path.suffix != ".dcm" and "landing" not in path.parts:
            data = path.read_bytes()
            hits += [f"{path}: {n!r}" for n in needles if n in data]
    return hits


@pytest.mark.slow
def test_ingest_and_preprocess_through_a_real_instance(layer_paths: LayerPaths) -> None:
    n_good = landing_with_bad_and_phi_scans(layer_paths)
    # in-process (given ``defs``): launching through the instance is test_launched_runs.py's
    defs = build_definitions(paths=layer_paths)
    reports = run_platform(layer_paths, defs=defs, until="preprocess_scans")

    assert [r.job for r in reports] == ["ingest", "preprocess_scans"]
    assert not any(r.failed for r in reports)
    assert len(reports[1].runs) == 1, "all scans go through one batched run"

    warehouse = Warehouse(layer_paths.warehouse)
    scans = warehouse.query("SELECT scan_id FROM scans")["scan_id"].tolist()
    assert len(scans) == n_good and "PHI-1" in scans
    quarantine = warehouse.query("SELECT folder, reason FROM quarantine")
    assert len(quarantine) == 1 and quarantine["reason"].iloc[0]
    assert int(warehouse.query("SELECT count(*) n FROM preprocessing")["n"].iloc[0]) == n_good

    instance = open_instance(layer_paths)
    assert sorted(instance.get_dynamic_partitions(SCANS)) == sorted(scans)
    materialized = instance.get_materialized_partitions(dg.AssetKey("preprocessed_volume"))
    assert materialized == set(scans)
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("cohort_manifest"), "subject_labels")]
    )
    assert checks, "the manifest's GX checks ran"
    assert phi_found_under(layer_paths.home) == []

    rerun = run_platform(layer_paths, defs=defs, until="preprocess_scans")
    assert [r.job for r in rerun] == ["ingest"], "nothing pending: no scan is re-processed"
    assert int(warehouse.query("SELECT count(*) n FROM scans")["n"].iloc[0]) == n_good


@pytest.mark.slow
def test_model_stages_register_champions_and_write_tables(layer_paths: LayerPaths) -> None:
    """Segmenter (1 epoch) and classifier (2 folds, 2 epochs) through the real assets."""
    simulate_cohort(SimulationConfig(n_subjects=16, seed=5), layer_paths.landing)
    base = build_definitions(paths=layer_paths)
    defs = dg.Definitions(
        assets=base.assets,
        jobs=base.jobs,
        resources={
            **base.resources,
            "classifier": ClassifierResource(
                n_folds=2, test_fraction=0.25, min_epochs=1, max_epochs=2, patience=1
            ),
            "segmenter": SegmenterResource(epochs=1),
        },
    )
    instance = open_instance(layer_paths)
    assert not run_job(defs, instance, "ingest").failed
    warehouse = Warehouse(layer_paths.warehouse)
    keys = warehouse.query("SELECT scan_id FROM scans")["scan_id"].tolist()
    assert not run_job(defs, instance, "preprocess_scans", partition_keys=keys).failed
    assert not run_job(defs, instance, "train_segmenter").failed
    assert not run_job(defs, instance, "segment_scans", partition_keys=keys).failed
    tracking = Tracking.for_paths(layer_paths)
    assert champion(tracking, "layer-segmenter") is not None
    segmentations = warehouse.query("SELECT scan_id, segmentation_source FROM segmentations")
    assert sorted(segmentations["scan_id"]) == sorted(keys)
    annotated = set(
        warehouse.query("SELECT scan_id FROM scans WHERE has_reference_layers")["scan_id"]
    )
    sources = dict(segmentations.itertuples(index=False))
    assert {k for k, v in sources.items() if v == "reference"} == annotated
    qc = warehouse.query("SELECT count(*) n, count(DISTINCT scan_id) s FROM segmentation_qc")
    assert (int(qc["n"].iloc[0]), int(qc["s"].iloc[0])) == (6 * len(keys), len(keys))
    assert (layer_paths.artifacts / "preprocessed" / keys[0] / "segmentation.nii").is_file()

    report = run_job(defs, instance, "train_classifiers", partition_keys=["bmode"])
    assert not report.failed
    assert champion(tracking, "layer-classifier-bmode") is not None or (
        "not above the floor" in _promotion_tag(tracking, "layer-classifier-bmode")
    )

    # The registered model is the two fold models' ensemble, loadable from the registry.
    latest = _latest_version(tracking, "layer-classifier-bmode")
    registered = load_version(tracking, latest)
    assert isinstance(registered, FoldEnsemble) and len(registered.heads) == 2
    # MLflow and Dagster link both ways; the training split is an MLflow dataset.
    run = tracking.activate().get_run(latest.run_id)
    assert run.data.tags["dagster.asset_key"] == "pain_classifier"
    assert run.data.tags["dagster.run_id"] == report.runs[-1]
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["layer-classifier-bmode"]
    event = instance.get_latest_materialization_event(dg.AssetKey("pain_classifier"))
    metadata = event.asset_materialization.metadata
    assert metadata["mlflow_run"].value.endswith(f"/runs/{latest.run_id}")
    assert metadata["mlflow_model_version"].value.endswith(f"/versions/{latest.version}")

    metrics = warehouse.query(
        "SELECT input_mode, model_version, value FROM model_metrics WHERE metric = 'heldout_auc'"
    )
    assert metrics.to_dict("records")[0]["input_mode"] == "bmode"
    assert 0.0 <= metrics["value"].iloc[0] <= 1.0
    predictions = warehouse.query("SELECT fold_role, probability FROM predictions")
    assert predictions["probability"].between(0, 1).all()
    split = warehouse.query(
        "SELECT subject_id, count(DISTINCT role) n FROM cohort_split GROUP BY 1"
    )
    assert (split["n"] == 1).all()
    by_site = warehouse.query(SPLIT_BY_SITE)  # every subject once, at one of its sites
    assert by_site["subjects"].sum() == len(split)
    assert set(by_site["site"]) <= set(warehouse.query("SELECT site FROM scans")["site"])
    event = instance.get_latest_materialization_event(dg.AssetKey("cohort_split"))
    assert "| site |" in event.asset_materialization.metadata["subjects_per_site"].value
    assert cohort_manifest.key in defs.resolve_asset_graph().get_all_asset_keys()


def _latest_version(tracking: Tracking, name: str) -> ModelVersion:
    versions = tracking.activate().search_model_versions(f"name = '{name}'")
    return max(versions, key=lambda v: int(v.version))


def _promotion_tag(tracking: Tracking, name: str) -> str:
    return _latest_version(tracking, name).tags.get("layer.promotion", "")
