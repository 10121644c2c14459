"""``python -m bench`` at the tiny scale: the report's structure, never its timings.

The bench runs in its own process, as ``make bench`` runs it: it sets torch's thread count and
activates MLflow stores, which must not leak into the rest of the suite.

Benchmarks 4 (one arrival through ``layer-platform run``) and 9 (kill and resume of a saliency
batch) drive the whole platform even at the tiny scale (six of the smoke's eight minutes on the
2-core machine) and are left to ``make bench``; what they exercise is proved by the suite's own
tests: ``defs/test_launched_runs.py`` and ``defs/test_automation.py`` (an arrival's runs),
``saliency/test_materialization.py`` (the summary refresh opens no voxel map) and
``reliability/test_crash_safety.py`` (a killed batch re-runs only the rest).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.core import Target, not_run
from bench.registry import BENCHMARKS

REPO_ROOT = Path(__file__).resolve().parents[2]

FIELDS = {
    "benchmark": str,
    "name": str,
    "unit": str,
    "ratio_means": str,
    "target": str,
    "met": bool,
    "notes": str,
}
NUMBERS = ("value", "baseline", "ratio")
#: Left to ``make bench`` (see above).
NOT_IN_SMOKE = {"incremental", "resume"}


@pytest.mark.slow(seconds=130)
def test_tiny_bench_writes_a_complete_report(tmp_path: Path) -> None:
    out, latest = tmp_path / "results", tmp_path / "latest"
    smoke = ",".join(b.key for b in BENCHMARKS if b.key not in NOT_IN_SMOKE)
    command = ["-m", "bench", "--scale", "tiny", "--only", smoke, "--out", str(out)]
    command += ["--publish", str(latest), "--cohort-scans", "4"]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    rows = json.loads((out / "report.json").read_text())
    assert isinstance(rows, list) and rows
    for row in rows:
        for field, kind in FIELDS.items():
            assert isinstance(row[field], kind), (row["name"], field)
        for field in NUMBERS:
            assert row[field] is None or isinstance(row[field], int | float), (row["name"], field)
        assert row["name"].startswith(row["benchmark"] + "/")
        assert not row["name"].endswith("/error"), row["notes"]
        if row["value"] is None:
            assert row["met"] is False and row["notes"].startswith("not yet run")
        if row["profile"] is not None:
            assert (out / row["profile"]).is_file()
    assert len({row["name"] for row in rows}) == len(rows)
    assert {row["benchmark"] for row in rows} == {b.key for b in BENCHMARKS} - NOT_IN_SMOKE
    measured = {row["benchmark"] for row in rows if row["value"] is not None}
    assert {
        "attribution",
        "cohort_saliency",
        "orchestration",
        "warehouse",
        "preprocessing",
        "training",
    } <= measured

    report = (out / "report.md").read_text()
    for fact in ("CPU model", "torch CPU threads used", torch.__version__, "device"):
        assert fact in report
    for row in rows:
        assert f"`{row['name']}`" in report
    assert "| simulated cohort of benchmarks 2-4 and 8 (scans) | 4 |" in report
    assert any(row["name"].startswith("cohort_saliency/4_scans/") for row in rows)
    assert (latest / "report.json").read_text() == (out / "report.json").read_text()
    assert (latest / "report.md").is_file()


def test_a_cohort_of_fewer_than_two_scans_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--scale", "tiny", "--cohort-scans", "1"])
    assert exited.value.code == 2
    assert "--cohort-scans must be >= 2" in capsys.readouterr().err


def test_a_target_not_run_is_never_met() -> None:
    row = not_run("gpu", "gpu/x", unit="min", target=Target("value", "<", 30), reason="no GPU")
    assert row.met is False and row.value is None and "not yet run" in row.notes
    assert Target("ratio", "<=", 1.25).met(None, 1.2)
    assert not Target("ratio", ">=", 3).met(1.0, 2.9)
    assert not Target("value", "<", 100).met(None, None)
