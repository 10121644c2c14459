"""Crash safety: ``kill -9`` a writer mid-way, then re-run: nothing lost, nothing doubled.

Every fault here is a SIGKILL to the writer's whole process group (no ``finally``, no
``atexit``, no flush): what a crash, the OOM killer or a pulled container leaves behind.

1. ``write_volume`` (every NIfTI the platform writes: preprocessed volumes, segmentations,
   saliency maps) killed at random moments: the target is always a complete old or new file,
   debris is only a hidden staging folder, and the next write of the file removes it.
2. ``Warehouse.replace_all`` killed at random moments: every table holds the rows of exactly
   one committed write (DuckDB rolls the interrupted transaction back), never half of one.
3. Each batched per-scan stage (preprocessing, segmentation, saliency: one run over every
   pending scan of a copy of the tiny cohort) killed once about half of its work is committed
   (a scan; for saliency a scan's mode, which commits on its own), then re-run: the finished
   work is not computed again (its timestamps stay), the rest is, every file opens, no staging
   debris is left, and the rows (for saliency: the rows and the cohort summary) are exactly
   those of an uninterrupted run.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from layer_platform.classification.modes import uses_swe
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.io import read_volume
from layer_platform.io.writers import staging_prefix
from layer_platform.orchestration.runner import UNFINISHED, open_instance, run_job
from layer_platform.settings import LayerPaths
from layer_platform.statistics import summary_rows
from layer_platform.warehouse.queries import champion_rows
from layer_platform.warehouse.store import Replacement, Warehouse
from layer_platform_tests.reliability.conftest import kill_group, spawn, tail
from layer_platform_tests.reliability.worker import (
    ROWS_PER_SCOPE,
    STAGE_JOBS,
    VOLUME_NAMES,
    VOLUME_SHAPE,
    champion_versions,
    pending_scans,
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
    assert all(name.startswith(tuple(map(staging_prefix, VOLUME_NAMES))) for name in leftovers)
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


#: Per worker command: the table its batch writes, the timestamp a re-run would renew, the
#: columns that must come out as in an uninterrupted run, and the rows cleared so the stage
#: has every scan to do again (a copy of the cohort whose scans arrived but were not yet
#: processed by the stage).
STAGE_TABLES = {
    "preprocess": ("preprocessing", "processed_at", ("preprocessing",)),
    "segment": ("segmentations", "computed_at", ("segmentations", "segmentation_qc")),
    "saliency": ("layer_saliency", "computed_at", ()),
}
#: What a stage commits on its own: a scan, or (saliency) a scan's input mode.
UNITS = {"preprocess": "scan_id", "segment": "scan_id", "saliency": "scan_id, input_mode"}
#: Columns that differ between two runs by design (when, and where in which home).
VOLATILE = {"processed_at", "computed_at", "path"}


def _stamps(warehouse: Warehouse, table: str, column: str, unit: str) -> dict[tuple, object]:
    """Per committed unit (``UNITS``), its rows' newest timestamp (none before the first)."""
    if not warehouse.table_exists(table):
        return {}
    found = warehouse.query(f"SELECT {unit}, max({column}) AS t FROM {table} GROUP BY ALL")
    return {tuple(row[:-1]): row[-1] for row in found.itertuples(index=False)}


def _unit_seconds(stamps: dict[tuple, object]) -> float:
    """The median time between consecutive commits: on a loaded machine one unit can stall for
    seconds (a 12-s gap among 0.35-s scans was seen), and a mean over it would wait past the
    rest of the batch."""
    times = sorted(pd.Timestamp(t) for t in stamps.values())
    return float(np.median([(b - a).total_seconds() for a, b in pairwise(times)]))


def _units_to_do(paths: LayerPaths, command: str, keys: list[str]) -> int:
    """The units a batch over ``keys`` commits: one per scan; for saliency one per scan and
    champion mode (SWE modes only for scans with valid SWE)."""
    if command != "saliency":
        return len(keys)
    with_swe = Warehouse(paths.warehouse).query(
        "SELECT count(*) AS n FROM preprocessing"
        " WHERE scan_id IN (SELECT unnest(?)) AND swe_valid_fraction > 0",
        [keys],
    )["n"][0]
    modes = champion_versions(paths)
    return sum(int(with_swe) if uses_swe(mode) else len(keys) for mode in modes)


def _stable_rows(warehouse: Warehouse, table: str) -> pd.DataFrame:
    frame = warehouse.query(f"SELECT * FROM {table}")
    frame = frame.drop(columns=[c for c in frame.columns if c in VOLATILE])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _copy_home(source: LayerPaths, target: Path, cleared: tuple[str, ...]) -> LayerPaths:
    """A copy of the cohort's ``LAYER_HOME`` with the stage's rows cleared (see above)."""
    shutil.copytree(source.home, target)
    paths = LayerPaths.under(target).ensure()
    Warehouse(paths.warehouse).replace_all([Replacement(t, [], key=None) for t in cleared])
    return paths


@pytest.fixture(scope="module")
def reference(saliency_cohort: Cohort) -> Warehouse:
    """The cohort with saliency computed in one uninterrupted run (what a re-run must match)."""
    report = run_job(
        saliency_cohort.defs,
        saliency_cohort.instance,
        "compute_saliency",
        partition_keys=saliency_cohort.keys,
    )
    assert not report.failed
    return saliency_cohort.warehouse


@pytest.mark.slow
@pytest.mark.parametrize("command", ["saliency", "segment", "preprocess"])
def test_a_batch_killed_half_way_reruns_only_the_unfinished_scans(
    command: str, saliency_cohort: Cohort, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    table, stamp, cleared = STAGE_TABLES[command]
    paths = _copy_home(saliency_cohort.paths, tmp_path / "home", cleared)
    warehouse = Warehouse(paths.warehouse)
    keys = pending_scans(paths, STAGE_JOBS[command])
    assert len(keys) >= 4, "the cohort gives the kill room to land half-way"
    units = _units_to_do(paths, command, keys)
    log = tmp_path / f"{command}.log"
    rng = random.Random(len(command))

    def committed() -> int:
        return len(_stamps(warehouse, table, stamp, UNITS[command]))

    child = spawn(command, paths.home, log)
    try:
        wait_for(lambda: committed() >= units // 2, child, log)
        per_unit = _unit_seconds(_stamps(warehouse, table, stamp, UNITS[command]))
        time.sleep(rng.uniform(0.2, 0.8) * per_unit)  # inside the next unit: computing or writing
    finally:
        kill_group(child)

    # what the kill left: whole units (rows and files) or nothing of a unit
    before = _stamps(warehouse, table, stamp, UNITS[command])
    assert units // 2 <= len(before) < units, f"killed after {len(before)} of {units}"
    assert unreadable_volumes(paths.artifacts) == []
    if command != "saliency":  # the scan's folder is whole: every preprocessed file loads
        for (scan,) in before:
            load_preprocessed(paths.artifacts / "preprocessed" / scan)
    left = pending_scans(paths, STAGE_JOBS[command])

    # the re-run does the rest, and only the rest
    rerun = spawn(command, paths.home, log)
    try:
        assert rerun.wait(timeout=WAIT_S) == 0, tail(log)
    finally:
        kill_group(rerun)
    assert f"pending for {len(left)} scans" in log.read_text()
    after = _stamps(warehouse, table, stamp, UNITS[command])
    assert len(after) == units and {unit[0] for unit in after} == set(keys)
    assert left == sorted({unit[0] for unit in set(after) - set(before)}), "pending = unfinished"
    assert {u: after[u] for u in before} == before, "finished work was computed again"
    assert all(after[u] > max(before.values()) for u in set(after) - set(before))
    assert pending_scans(paths, STAGE_JOBS[command]) == []
    assert hidden_entries(paths.artifacts) == [], "staging debris left where readers look"

    # exactly the rows (and, for saliency, the summary) of an uninterrupted run
    # (the reference saliency run comes after the copy, which needed saliency still to do)
    done = (
        request.getfixturevalue("reference") if command == "saliency" else saliency_cohort.warehouse
    )
    pd.testing.assert_frame_equal(_stable_rows(warehouse, table), _stable_rows(done, table))
    if command == "saliency":
        versions = champion_versions(paths)
        ours, theirs = champion_rows(warehouse, versions), champion_rows(done, versions)
        pd.testing.assert_frame_equal(
            summary_rows(ours, n_boot=TINY.n_boot), summary_rows(theirs, n_boot=TINY.n_boot)
        )
    # Dagster: the killed run reads as failed (not running forever) and holds no pool slot
    instance = open_instance(paths)
    assert not instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED))
    pool = instance.event_log_storage.get_concurrency_info("warehouse")
    assert not pool.claimed_slots and not pool.pending_steps
