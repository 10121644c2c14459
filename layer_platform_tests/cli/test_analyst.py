"""The analyst path: ``sql``, ``snapshot``, ``--json``, ``--version`` and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import layer_platform
from layer_platform.analysis import WarehouseMissing, WriteRefused
from layer_platform.cli import main
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.cli.tiny_warehouse import SUBJECTS, ranking_rows

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "layer_platform.cli", *argv],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sql_formats(tiny_home: LayerPaths, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "SELECT fold, count(*) AS n FROM cohort_split GROUP BY ALL ORDER BY fold NULLS LAST"
    expected = [{"fold": 0, "n": 4}, {"fold": 1, "n": 4}, {"fold": None, "n": 4}]

    assert main(["sql", "--format", "json", sql]) == 0
    assert json.loads(capsys.readouterr().out) == expected

    assert main(["sql", "--format", "csv", sql]) == 0
    assert capsys.readouterr().out.splitlines() == ["fold,n", "0,4", "1,4", ",4"]

    assert main(["sql", "--format", "markdown", sql]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].replace(" ", "") == "|fold|n|" and len(lines) == 5

    assert main(["sql", "SELECT scan_id FROM scans WHERE subject_id = 'P01' ORDER BY 1"]) == 0
    assert capsys.readouterr().out.split() == ["scan_id", "P01-L", "P01-R"]


@pytest.mark.parametrize(
    "sql", ["EXPLAIN SELECT * FROM scans", "EXPLAIN ANALYZE SELECT 1", "DESCRIBE scans"]
)
def test_sql_explains_and_describes(
    tiny_home: LayerPaths, capsys: pytest.CaptureFixture[str], sql: str
) -> None:
    assert main(["sql", sql]) == 0
    assert capsys.readouterr().out


def test_sql_reads_stdin(
    tiny_home: LayerPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("SELECT count(*) AS n FROM scans"))
    assert main(["sql", "--format", "json", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 2 * len(SUBJECTS)}]


@pytest.mark.parametrize(
    ("sql", "code", "message"),
    [
        ("DELETE FROM scans", 6, "only SELECT statements"),
        ("SELECT 1; DROP TABLE scans", 6, "DROP"),
        ("COPY scans TO 'leak.csv'", 6, "COPY"),
        ("ATTACH 'other.duckdb'", 6, "ATTACH"),
        ("EXPLAIN ANALYZE COPY (SELECT 42) TO 'leak.csv'", 6, "COPY"),
        ("EXPLAIN DELETE FROM scans", 6, "DELETE"),
        ("SELEC 1", 5, "syntax error"),
        ("SELECT * FROM no_such_table", 5, "no_such_table"),
        ("SELECT no_such_column FROM scans", 5, "no_such_column"),
    ],
)
def test_sql_errors_are_one_line_with_their_exit_code(
    tiny_home: LayerPaths,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sql: str,
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sql", sql]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("layer-platform sql: error: ") and message in captured.err
    assert captured.err.count("\n") == 1
    # nothing was written: no file, no other database, every row still there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    assert layer_platform.query("SELECT count(*) AS n FROM scans")["n"].iloc[0] == 12


@pytest.mark.parametrize(
    "argv",
    [
        ["sql", "SELECT 1"],
        ["ranking"],
        ["snapshot", "copy.duckdb"],
        ["export", "--to", "parquet"],
        ["export", "--datalist", "split"],
    ],
)
def test_a_missing_warehouse_exits_3_without_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    monkeypatch.setenv("LAYER_HOME", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "no warehouse at" in err and "layer-platform run" in err and err.count("\n") == 1
    assert not (tmp_path / "empty" / "warehouse").exists()  # a read never creates the file


def test_errors_through_the_console_script(tmp_path: Path) -> None:
    """The module entry point: exit code and stderr as a shell script sees them."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "LAYER_HOME": str(tmp_path)}
    missing = run_cli("sql", "SELECT 1", env=env)
    assert missing.returncode == 3 and missing.stdout == ""
    assert missing.stderr.startswith("layer-platform sql: error: no warehouse at")
    assert "Traceback" not in missing.stderr and missing.stderr.count("\n") == 1


def test_status_and_ranking_json(tiny_home: LayerPaths, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["warehouse"] == str(tiny_home.warehouse) and status["warehouse_exists"]
    assert status["counts"]["scans"] == {
        "scans": 12,
        "subjects": 6,
        "mp": 6,
        "control": 6,
        "with_swe": 6,
        "annotated": 6,
    }
    assert [q["folder"] for q in status["quarantined"]] == ["bad-01"]

    assert main(["ranking", "--json", "--method", "ablation"]) == 0
    ranking = json.loads(capsys.readouterr().out)
    expected = [r for r in ranking_rows() if r["method"] == "ablation"]
    assert [(r["input_mode"], r["layer"], r["rank"]) for r in ranking] == [
        (r["input_mode"], r["layer"], r["rank"]) for r in expected
    ]
    assert ranking[0]["computed_at"] == "2026-01-01T12:00:00"


def test_status_json_without_a_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAYER_HOME", str(tmp_path))
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["warehouse_exists"] is False and status["counts"] == {}


def test_version_comes_from_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"layer-platform {version('layer-platform')}"


def test_snapshot_is_a_private_consistent_copy(
    tiny_home: LayerPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "analyst" / "copy.duckdb"
    assert main(["snapshot", str(copy)]) == 0
    assert f"written to {copy}" in capsys.readouterr().out
    held = duckdb.connect(str(copy), read_only=True)  # held open while the "pipeline" writes
    try:
        Warehouse(tiny_home.warehouse).replace("quarantine", [], key=None)  # the pipeline
        assert held.execute("SELECT count(*) FROM quarantine").fetchone() == (1,)
    finally:
        held.close()
    assert main(["snapshot", str(tiny_home.warehouse)]) == WriteRefused.exit_code


def test_python_api_finds_the_warehouse_like_the_cli(
    tiny_home: LayerPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = layer_platform.connect()
    assert reader.path == tiny_home.warehouse
    assert {"scans", "cohort_split", "layer_ranking"} <= set(reader.tables())
    top = layer_platform.query(
        "SELECT DISTINCT layer FROM layer_ranking WHERE rank = ? ORDER BY 1", [1]
    )
    assert top["layer"].tolist() == ["deep_fascia"]
    with pytest.raises(WriteRefused):
        reader.query("INSERT INTO quarantine SELECT * FROM quarantine")

    moved = tmp_path / "elsewhere.duckdb"
    tiny_home.warehouse.rename(moved)
    with pytest.raises(WarehouseMissing, match="LAYER_WAREHOUSE"):
        layer_platform.connect()
    monkeypatch.setenv("LAYER_WAREHOUSE", str(moved))
    assert layer_platform.connect().path == moved
    moved.rename(tiny_home.warehouse)
    assert layer_platform.connect(tiny_home.home).path == tiny_home.warehouse  # explicit home


def test_import_stays_light() -> None:
    """``import layer_platform`` and its query API load no torch and no Dagster."""
    code = (
        "import sys, layer_platform; layer_platform.connect; layer_platform.__version__;"
        " print(sorted(m for m in ('torch', 'dagster', 'monai', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
