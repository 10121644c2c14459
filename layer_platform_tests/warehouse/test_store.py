"""Warehouse writes are idempotent per key and queries bind parameters."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from layer_platform.cli import main
from layer_platform.warehouse.store import Warehouse


def quarantine_row(folder: str, reason: str) -> dict:
    return {
        "folder": folder,
        "scan_id": None,
        "reason": reason,
        "detected_at": dt.datetime(2026, 1, 1),
    }


def test_replace_is_idempotent_and_keyed(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.ensure_schema()
    rows = [quarantine_row("a", "bad"), quarantine_row("b", "worse")]
    for _ in range(3):
        warehouse.replace("quarantine", rows, key="folder", keys=["a", "b"])
    assert int(warehouse.query("SELECT count(*) AS n FROM quarantine")["n"].iloc[0]) == 2

    warehouse.replace("quarantine", [quarantine_row("a", "fixed?")], key="folder", keys=["a"])
    got = warehouse.query("SELECT folder, reason FROM quarantine ORDER BY folder")
    assert got.to_dict("records") == [
        {"folder": "a", "reason": "fixed?"},
        {"folder": "b", "reason": "worse"},
    ]


def test_failed_insert_rolls_back_the_delete(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.ensure_schema()
    warehouse.replace("quarantine", [quarantine_row("a", "bad")], key="folder", keys=["a"])
    with pytest.raises(Exception, match=r"NOT NULL|null"):
        warehouse.replace(
            "quarantine",
            [{"folder": "a", "scan_id": None, "reason": None, "detected_at": dt.datetime.now()}],
            key="folder",
            keys=["a"],
        )
    assert warehouse.query("SELECT reason FROM quarantine")["reason"].tolist() == ["bad"]


def test_query_binds_parameters_instead_of_formatting(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.ensure_schema()
    warehouse.replace("quarantine", [quarantine_row("a", "bad")], key="folder", keys=["a"])
    hostile = "a' OR '1'='1"
    assert warehouse.query("SELECT * FROM quarantine WHERE folder = ?", [hostile]).empty


def test_unknown_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown warehouse table"):
        Warehouse(tmp_path / "w.duckdb").replace("students", [], key="id", keys=[])


def test_missing_warehouse_gives_an_actionable_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="layer-platform run"):
        Warehouse(tmp_path / "none.duckdb").query("SELECT 1")


def test_export_writes_every_table_as_parquet_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAYER_HOME", str(tmp_path / "home"))
    warehouse = Warehouse(tmp_path / "home" / "warehouse" / "layer.duckdb")
    warehouse.ensure_schema()
    warehouse.replace("quarantine", [quarantine_row("a", "bad")], key="folder", keys=["a"])
    target = tmp_path / "export"

    assert main(["export", "--to", str(target)]) == 0

    assert f"written to {target}" in capsys.readouterr().out
    tables = set(warehouse.query("SELECT table_name FROM information_schema.tables")["table_name"])
    assert {p.name for p in target.iterdir()} == {f"{t}.parquet" for t in tables}
    back = duckdb.sql(f"SELECT folder, reason FROM '{target / 'quarantine.parquet'}'").fetchall()
    assert back == [("a", "bad")]


def test_an_old_layer_saliency_table_gains_the_out_of_sample_columns(tmp_path: Path) -> None:
    """#16: rows written before ``explained_by``, ``reference_sha256``, the per-modality and
    the joint ablation columns and ``swe_coverage`` (and #17's boundary columns) keep NULL
    there."""
    from layer_platform.saliency_names import BOUNDARY_COLUMNS
    from layer_platform.warehouse.schema import TABLES

    new = TABLES["layer_saliency"]
    old = new[: new.index(",\n            explained_by")] + "\n        )"
    assert "explained_by" not in old and "ablation_delta_swe" not in old
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(old)
        con.execute(
            "INSERT INTO layer_saliency VALUES ('s1', 'p1', 'MP', 'bmode', 'gradient', 'm', '1',"
            " 'muscle', 5, 10, 0.1, 0.2, 0.3, 1.0, NULL, 'model', now())"
        )
    warehouse = Warehouse(path)
    warehouse.ensure_schema()
    new_columns = [
        "explained_by",
        "reference_sha256",
        "ablation_delta_bmode",
        "ablation_delta_swe",
        "joint_ablation_delta",
        "swe_coverage",
        *BOUNDARY_COLUMNS[:4],
        "attribution_settings",
        *BOUNDARY_COLUMNS[4:],  # each modality's eroded and dilated ablation
    ]
    rows = warehouse.query(f"SELECT scan_id, {', '.join(new_columns)} FROM layer_saliency")
    assert rows.astype(object).where(rows.notna(), None).to_dict("records") == [
        {"scan_id": "s1", **dict.fromkeys(new_columns)}
    ]
    columns = warehouse.query("DESCRIBE layer_saliency")["column_name"].tolist()
    assert columns[-13:] == new_columns[2:]


def test_a_read_only_open_that_reads_a_file_mid_release_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short read on opening is transient for a reader (retried), never for a writer."""
    from layer_platform.warehouse import store

    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.ensure_schema()
    real, attempts = duckdb.connect, []

    def flaky(path: str, read_only: bool = False):
        attempts.append(read_only)
        if len(attempts) == 1:
            raise duckdb.IOException(
                f'IO Error: Could not read enough bytes from file "{path}": attempted to read'
                " 262144 bytes from location 536576"
            )
        return real(path, read_only=read_only)

    monkeypatch.setattr(store.duckdb, "connect", flaky)
    assert warehouse.query("SELECT 1 AS one")["one"].tolist() == [1]
    assert attempts == [True, True]
    attempts.clear()
    with pytest.raises(duckdb.IOException, match="read enough bytes"):
        warehouse.ensure_schema()
    assert attempts == [False]
