"""Crash safety: ``kill -9`` a writer mid-way, then re-run: nothing lost, nothing doubled.

Every fault here is a SIGKILL to the writer's whole process group (no ``finally``, no
``atexit``, no flush): what a crash, the OOM killer or a pulled container leaves behind.

1. ``write_volume`` (every NIfTI the platform writes: preprocessed volumes, segmentations,
   saliency maps) killed at random moments: the target is always a complete old or new file,
   debris is only a hidden staging folder, and the next write of the file removes it.
2. ``Warehouse.replace_all`` killed at random moments: every table holds the rows of exactly
   one committed write (DuckDB rolls the interrupted transaction back), never half of one.
3. A saliency backfill (``compute_saliency``, two scans per run, on the real on-disk instance
   with the project's ``dagster.yaml``) killed once some but not all partitions are written,
   then re-run: the warehouse holds exactly the expected rows (per scan, mode, method and
   layer, no duplicates, no partial partition) and every NIfTI under the artifacts opens.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from layer_platform.io import read_volume
from layer_platform.io.writers import _staging_prefix
from layer_platform.orchestration.runner import UNFINISHED
from layer_platform.warehouse.pending import pending_saliency
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.reliability.conftest import kill_group, spawn, tail
from layer_platform_tests.reliability.worker import (
    ROWS_PER_SCOPE,
    VOLUME_NAMES,
    VOLUME_SHAPE,
    champion_versions,
)
from layer_platform_tests.saliency.test_materialization import TINY, Cohort

KILLS = 6
WAIT_S = 180.0


def wait_for(condition: Callable[[], bool], child: subprocess.Popen, log: Path) -> None:
    """Poll ``condition`` until true; fail if the child exits first or time runs out."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert child.poll() is None, f"the child exited before the kill:\n{tail(log)}"
        assert time.monotonic() < deadline, f"gave up waiting:\n{tail(log)}"
        time.sleep(0.05)


def generations(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split() if line.isdigit()]


def hidden_entries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".*"))


def unreadable_volumes(root: Path) -> list[str]:
    """Every NIfTI a reader could list under ``root`` (hidden staging folders aside) opens."""
    bad = []
    for path in sorted([*root.rglob("*.nii"), *root.rglob("*.nii.gz")]):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        try:
            read_volume(path)
        except Exception as exc:  # any failure to open is the finding
            bad.append(f"{path.relative_to(root)}: {exc}")
    return bad


def test_killed_volume_writes_leave_the_old_or_the_new_file(tmp_path: Path) -> None:
    rng = random.Random(8)
    log = tmp_path / "volumes.log"
    seen: dict[str, list[int]] = {name: [] for name in VOLUME_NAMES}
    for _ in range(KILLS):
        child = spawn("volumes", tmp_path, log)
        done = len(generations(log))
        try:
            wait_for(lambda done=done: len(generations(log)) > done, child, log)
            time.sleep(rng.uniform(0.0, 0.3))  # lands in gzip, a rename or between files
        finally:
            kill_group(child)
        last = generations(log)[-1]
        for name in VOLUME_NAMES:
            volume = read_volume(tmp_path / name)  # raises on a half-written file
            values = np.unique(volume.array)
            assert volume.shape == VOLUME_SHAPE and len(values) == 1, "one generation per file"
            assert int(values[0]) in (last, last + 1), "the last finished write, or the next"
            seen[name].append(int(values[0]))
        visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
        assert visible == sorted([*VOLUME_NAMES, "volumes.log"]), "no temp name is visible"
    assert all(found == sorted(found) for found in seen.values()), "no write is ever undone"
    # debris of killed writers: hidden staging folders only, swept by the next write
    child = spawn("volumes", tmp_path, log)
    done = len(generations(log))
    try:
        wait_for(lambda: len(generations(log)) > done, child, log)
    finally:
        kill_group(child)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert all(name.startswith(tuple(map(_staging_prefix, VOLUME_NAMES))) for name in leftovers)
    assert len(leftovers) <= len(VOLUME_NAMES), f"dead writers' staging not swept: {leftovers}"


def test_killed_warehouse_transactions_leave_all_or_nothing(tmp_path: Path) -> None:
    rng = random.Random(9)
    path, log = tmp_path / "w.duckdb", tmp_path / "rows.log"
    committed: list[int] = []
    for _ in range(KILLS):
        child = spawn("rows", path, log)
        done = len(generations(log))
        try:
            wait_for(lambda done=done: len(generations(log)) > done, child, log)
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            kill_group(child)
        last = generations(log)[-1]
        found = Warehouse(path).query(
            "SELECT scan_id, reason, count(*) AS n, count(DISTINCT folder) AS folders"
            " FROM quarantine GROUP BY ALL ORDER BY scan_id"
        )
        assert found["scan_id"].tolist() == ["a", "b"], "neither scope is ever missing"
        assert (found["n"] == ROWS_PER_SCOPE).all() and (found["folders"] == ROWS_PER_SCOPE).all()
        reasons = set(found["reason"])
        assert len(reasons) == 1, f"both scopes come from one transaction: {reasons}"
        generation = int(reasons.pop().split()[-1])
        assert generation in (last, last + 1), "the last acknowledged commit, or the next"
        committed.append(generation)
    assert committed == sorted(committed), "no commit is ever undone"


def _rows_per_scan_mode(warehouse: Warehouse) -> dict[tuple[str, str], int]:
    if not warehouse.table_exists("layer_saliency"):
        return {}
    found = warehouse.query(
        "SELECT scan_id, input_mode, count(*) AS n FROM layer_saliency GROUP BY ALL"
    )
    return {(r.scan_id, r.input_mode): int(r.n) for r in found.itertuples()}


@pytest.mark.slow
def test_killed_saliency_backfill_reruns_to_exactly_the_expected_rows(
    saliency_cohort: Cohort, tmp_path: Path
) -> None:
    paths, warehouse, keys = saliency_cohort.paths, saliency_cohort.warehouse, saliency_cohort.keys
    versions = champion_versions(paths)
    assert pending_saliency(warehouse, versions) == keys
    with_swe = set(
        warehouse.query("SELECT scan_id FROM preprocessing WHERE swe_valid_fraction > 0")["scan_id"]
    )
    expected = {(k, "bmode") for k in keys} | {(k, "bmode_swe") for k in with_swe}
    per_scan_mode = 6 * len(TINY.methods)
    log = tmp_path / "saliency.log"

    child = spawn("saliency", paths.home, log)
    started = time.monotonic()

    def scans_done() -> int:
        return len({scan for scan, _ in _rows_per_scan_mode(warehouse)})

    try:
        wait_for(lambda: scans_done() >= 1, child, log)
        first, first_count = time.monotonic(), scans_done()
        wait_for(lambda: scans_done() >= len(keys) // 2, child, log)
        per_scan = (time.monotonic() - first) / max(scans_done() - first_count, 1)
        time.sleep(per_scan)  # half-way through the next run (two scans): attributing or writing
    finally:
        kill_group(child)
    killed_after = time.monotonic() - started

    # what the crash left: whole partitions or nothing, and only complete files
    rows = _rows_per_scan_mode(warehouse)
    done = {scan for scan, _ in rows}
    assert 0 < len(done) < len(keys), f"killed mid-way ({len(done)}/{len(keys)} scans)"
    assert all(n == per_scan_mode for n in rows.values()), f"a partial partition: {rows}"
    assert {(s, m) for s, m in expected if s in done} == set(rows), "a mode missing for a scan"
    assert unreadable_volumes(paths.artifacts) == []
    assert pending_saliency(warehouse, versions) == sorted(set(keys) - done)
    instance = saliency_cohort.instance
    killed = [
        r.dagster_run.run_id for r in instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED))
    ]
    assert len(killed) == 1, "the killed run is left STARTED"

    # the re-run does the rest, and only the rest
    rerun = spawn("saliency", paths.home, log)
    try:
        assert rerun.wait(timeout=WAIT_S) == 0, tail(log)
    finally:
        kill_group(rerun)
    assert f"saliency pending for {len(keys) - len(done)} scans" in log.read_text()

    rows = _rows_per_scan_mode(warehouse)
    assert set(rows) == expected and all(n == per_scan_mode for n in rows.values())
    duplicates = warehouse.query(
        "SELECT scan_id, input_mode, method, model_version, layer, count(*) AS n"
        " FROM layer_saliency GROUP BY ALL HAVING count(*) > 1"
    )
    assert duplicates.empty, duplicates
    layers = warehouse.query(
        "SELECT count(DISTINCT layer) AS layers, count(*) AS n FROM layer_saliency"
        " GROUP BY scan_id, input_mode, method"
    )
    assert (layers["layers"] == 6).all() and (layers["n"] == 6).all()
    diagnostics = warehouse.query(
        "SELECT count(*) AS n FROM attribution_diagnostics"
        " GROUP BY scan_id, input_mode, method, model_version, metric HAVING count(*) > 1"
    )
    assert diagnostics.empty, "attribution diagnostics duplicated"
    assert pending_saliency(warehouse, versions) == []

    # files: every map of every row exists and opens; no temp name left anywhere
    for scan, mode in expected:
        for method in TINY.methods:
            assert (paths.artifacts / "saliency" / scan / f"{mode}_{method}.nii.gz").is_file()
    assert unreadable_volumes(paths.artifacts) == []
    assert hidden_entries(paths.artifacts) == [], "staging debris left where readers look"

    # Dagster: the killed run reads as failed (not running forever) and holds no pool slot
    record = instance.get_run_record_by_id(killed[0])
    assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.FAILURE
    assert not instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED))
    pool = instance.event_log_storage.get_concurrency_info("warehouse")
    assert not pool.claimed_slots and not pool.pending_steps

    print(
        f"\nkilled after {killed_after:.1f} s with {len(done)}/{len(keys)} scans written",
        file=sys.stderr,
    )
