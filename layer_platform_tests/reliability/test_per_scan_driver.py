"""The per-scan driver of the batched stages, on a real DuckDB file and real folders."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from layer_platform.batching import (
    ScanCheckFailed,
    ScanResult,
    run_per_scan,
    staging_folder,
    swap_in,
)
from layer_platform.imaging.preprocess import PreprocessConfig
from layer_platform.imaging.stage import prepare_landed_scan
from layer_platform.ingestion.manifest import refresh_manifest
from layer_platform.simulation import SimulationConfig, simulate_cohort
from layer_platform.warehouse.store import Replacement, Warehouse

LOG = logging.getLogger("test")
SCANS = ["s1", "s2", "s3", "s4"]


def _row(scan_id: str) -> Replacement:
    row = {"folder": scan_id, "scan_id": scan_id, "reason": "done", "stage": "result"}
    return Replacement(
        "quarantine",
        [{**row, "detected_at": "2026-01-01"}],
        key="scan_id",
        keys=[scan_id],
        scope={"stage": "result"},
    )


def _warehouse(tmp_path: Path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.ensure_schema()
    return warehouse


def _results(warehouse: Warehouse) -> list[str]:
    found = warehouse.query("SELECT scan_id FROM quarantine WHERE stage = 'result' ORDER BY 1")
    return list(found["scan_id"])


def test_a_failing_scan_is_quarantined_with_its_stage_and_the_batch_goes_on(
    tmp_path: Path,
) -> None:
    warehouse = _warehouse(tmp_path)

    def work(scan_id: str) -> ScanResult:
        if scan_id == "s2":
            raise ValueError("a value that must not reach the warehouse: 0.1234")
        if scan_id == "s3":
            raise ScanCheckFailed("non_empty_tissue")
        return ScanResult(writes=[_row(scan_id)])

    outcome = run_per_scan(SCANS, work, stage="segmentation", warehouse=warehouse, log=LOG)
    assert outcome.done == ["s1", "s4"] and _results(warehouse) == ["s1", "s4"]
    refused = warehouse.query(
        "SELECT scan_id, stage, reason FROM quarantine WHERE stage = 'segmentation' ORDER BY 1"
    )
    assert refused.to_dict("records") == [
        {"scan_id": "s2", "stage": "segmentation", "reason": "segmentation: ValueError"},
        {
            "scan_id": "s3",
            "stage": "segmentation",
            "reason": "segmentation: check non_empty_tissue",
        },
    ]
    assert outcome.failing("non_empty_tissue") == ["s3"]

    # fixed on a later run: the scan's quarantine row of that stage goes with its commit
    run_per_scan(
        ["s2"],
        lambda s: ScanResult(writes=[_row(s)]),
        stage="segmentation",
        warehouse=warehouse,
        log=LOG,
    )
    left = warehouse.query("SELECT scan_id FROM quarantine WHERE stage = 'segmentation'")
    assert list(left["scan_id"]) == ["s3"]


def test_an_interrupt_keeps_the_scans_committed_before_it(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path)

    def work(scan_id: str) -> ScanResult:
        if scan_id == "s3":
            raise KeyboardInterrupt  # Ctrl-C, SIGTERM or Dagster's interrupt, mid-scan
        return ScanResult(writes=[_row(scan_id)])

    with pytest.raises(KeyboardInterrupt):
        run_per_scan(SCANS, work, stage="saliency", warehouse=warehouse, log=LOG)
    assert _results(warehouse) == ["s1", "s2"]


def test_a_scan_in_parts_keeps_the_parts_committed_before_a_failure(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path)
    committed_when: dict[str, list[str]] = {}

    def work(scan_id: str) -> Iterator[ScanResult]:
        for part in ("a", "b"):
            if scan_id == "s2" and part == "b":
                raise ScanCheckFailed("rows_complete")
            committed_when[f"{scan_id}{part}"] = _results(warehouse)
            yield ScanResult(writes=[_row(f"{scan_id}{part}")], seconds={part: 1.0})

    outcome = run_per_scan(SCANS[:3], work, stage="saliency", warehouse=warehouse, log=LOG)
    assert committed_when["s1b"] == ["s1a"], "a part is committed before the next one runs"
    assert _results(warehouse) == ["s1a", "s1b", "s2a", "s3a", "s3b"]
    assert outcome.done == ["s1", "s3"] and outcome.quarantined == {"s2": "check rows_complete"}
    assert outcome.results["s1"].seconds == {"a": 1.0, "b": 1.0}


def test_a_stop_request_ends_the_batch_between_scans(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path)
    started: list[str] = []

    def work(scan_id: str) -> ScanResult:
        started.append(scan_id)
        return ScanResult(writes=[_row(scan_id)])

    outcome = run_per_scan(
        SCANS,
        work,
        stage="saliency",
        warehouse=warehouse,
        log=LOG,
        should_stop=lambda: len(started) == 2,
    )
    assert started == ["s1", "s2"] and _results(warehouse) == ["s1", "s2"]
    assert outcome.not_started == ["s3", "s4"]


def test_a_folder_is_swapped_in_whole(tmp_path: Path) -> None:
    target = tmp_path / "scan"
    for generation in ("old", "new"):
        staged = staging_folder(target)
        assert staged.name.startswith(".") and staged.parent == tmp_path
        (staged / "bmode.nii").write_text(generation)
        if generation == "old":
            (staged / "layers.nii").write_text(generation)
        swap_in(staged, target)
    assert sorted(p.name for p in target.iterdir()) == ["bmode.nii"], "no old file survives"
    assert (target / "bmode.nii").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["scan"], "no staging left"


def test_preprocessing_refuses_bytes_other_than_the_registered_ones(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    simulate_cohort(SimulationConfig(n_subjects=1, seed=3), landing)
    warehouse = _warehouse(tmp_path)
    refresh_manifest(landing, warehouse)
    scan = warehouse.query("SELECT folder, content_hash FROM scans ORDER BY scan_id").iloc[0]
    folder = landing / scan["folder"]
    config = PreprocessConfig.cpu()
    prepare_landed_scan(folder, landing, config, scan["content_hash"])  # the registered bytes
    bmode = next(folder.glob("bmode.*"))
    bmode.write_bytes(bmode.read_bytes())  # same bytes rewritten: still the registered content
    prepare_landed_scan(folder, landing, config, scan["content_hash"])
    meta = folder / "scan.json"
    meta.write_text(meta.read_text().replace("}", ', "device": "re-exported"}', 1))
    with pytest.raises(ScanCheckFailed, match="content_hash"):
        prepare_landed_scan(folder, landing, config, scan["content_hash"])
