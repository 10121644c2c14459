"""User input reaches SQL as bound parameters only, never as SQL text.

Landing input is user input: ``scan.json`` values, folder names and (once accepted) scan ids all
end up in DuckDB. An injection attempt must round-trip as plain data and leave every table in
place. A static audit then checks that no SQL call in the package builds its text from an
f-string, ``%`` or ``.format`` — except the warehouse's own writer, whose only interpolations
are a table name checked against the schema and column names checked as identifiers.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path

import pytest

from layer_platform.ingestion.manifest import refresh_manifest
from layer_platform.ingestion.policy import IntakePolicy
from layer_platform.warehouse.schema import TABLES
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.ingestion.test_intake import write_scan

EVIL = "x'; DROP TABLE scans; --"
PACKAGE = Path(__file__).resolve().parents[2] / "layer_platform"
#: file → the names its f-string SQL may interpolate (validated before use in that file).
#: Names that may be spliced into SQL text: checked identifiers and module-level SQL constants.
ALLOWED_INTERPOLATION = {
    "warehouse/store.py": {"table", "where"},
    "warehouse/catalog.py": {"table"},  # row counts of tables checked against schema.TABLES
    "defs/sensors.py": {"PENDING_PREPROCESSING"},
}
SQL_METHODS = {"query", "execute", "sql", "executemany"}


def _tables(warehouse: Warehouse) -> set[str]:
    found = warehouse.query("SELECT table_name FROM information_schema.tables")
    return set(found["table_name"])


def test_an_injection_in_a_key_round_trips_as_data(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.ensure_schema()
    row = {"folder": EVIL, "scan_id": EVIL, "reason": EVIL, "detected_at": dt.datetime(2026, 1, 1)}
    for _ in range(2):  # the second write deletes by the hostile key, then inserts again
        warehouse.replace("quarantine", [row], key="folder", keys=[EVIL], scope={"scan_id": EVIL})
    got = warehouse.query("SELECT * FROM quarantine WHERE scan_id = ?", [EVIL])
    assert got[["folder", "scan_id", "reason"]].to_dict("records") == [
        {"folder": EVIL, "scan_id": EVIL, "reason": EVIL}
    ]
    assert set(TABLES) <= _tables(warehouse)
    assert warehouse.query("SELECT * FROM quarantine WHERE folder = ?", ["x' OR '1'='1"]).empty


def test_injections_through_the_landing_zone_are_stored_verbatim(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_scan(landing, "refused", scan_id=EVIL)  # not a valid scan_id: quarantined
    write_scan(
        landing,
        "O'Brien; DROP TABLE scans; --",  # a legal folder name
        scan_id="S1",
        subject_id=EVIL,
        meta={"site": EVIL, "device": EVIL, "note": EVIL},
    )
    warehouse = Warehouse(tmp_path / "w.duckdb")
    policy = IntakePolicy(extra_keys=frozenset({"note"}))  # a site that keeps a free-text key
    update = refresh_manifest(landing, warehouse, policy=policy)
    assert update.accepted_ids == ["S1"]
    assert set(TABLES) <= _tables(warehouse)
    scan = warehouse.query("SELECT * FROM scans WHERE subject_id = ?", [EVIL]).iloc[0]
    assert (scan.folder, scan.site, scan.device) == ("O'Brien; DROP TABLE scans; --", EVIL, EVIL)
    assert json.loads(scan.metadata) == {"note": EVIL}
    reason = warehouse.query("SELECT reason FROM quarantine WHERE folder = 'refused'")["reason"]
    assert "'scan_id' is not allowed" in reason.iloc[0] and EVIL not in reason.iloc[0]
    again = refresh_manifest(
        landing, warehouse, policy=policy
    )  # the hostile folder name is a lookup key too
    assert (again.accepted, again.quarantined, again.unchanged) == ([], [], 2)


def _sql_text_builders(tree: ast.AST) -> list[tuple[int, set[str]]]:
    """(line, interpolated names) of each ``x.query/execute/sql(<built string>, ...)`` call."""
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_METHODS
            and node.args
        ):
            continue
        text = node.args[0]
        formatted = isinstance(text, ast.JoinedStr | ast.BinOp) or (
            isinstance(text, ast.Call)
            and isinstance(text.func, ast.Attribute)
            and text.func.attr == "format"
        )
        if formatted:
            names = {n.id for n in ast.walk(text) if isinstance(n, ast.Name)}
            found.append((node.lineno, names))
    return found


def test_no_sql_text_is_built_from_values() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        allowed = ALLOWED_INTERPOLATION.get(relative, set())
        for line, names in _sql_text_builders(ast.parse(path.read_text(), str(path))):
            if not names <= allowed:
                offenders.append(f"{relative}:{line} interpolates {sorted(names - allowed)}")
    assert offenders == [], "bind values as parameters (?, $name) instead"


def test_the_audit_catches_a_formatted_query() -> None:
    """The audit above would fail on the classic mistake (so it is not vacuous)."""
    bad = ast.parse("warehouse.query(f\"SELECT * FROM scans WHERE scan_id = '{scan_id}'\")")
    assert _sql_text_builders(bad) == [(1, {"scan_id"})]
    bad = ast.parse('con.execute("DELETE FROM scans WHERE scan_id = %s" % scan_id)')
    assert _sql_text_builders(bad) == [(1, {"scan_id"})]


@pytest.mark.parametrize("table", ["scans; DROP TABLE scans", "students"])
def test_the_writer_refuses_a_table_outside_the_schema(tmp_path: Path, table: str) -> None:
    with pytest.raises(ValueError, match="unknown warehouse table"):
        Warehouse(tmp_path / "w.duckdb").replace(table, [], key=None)


def test_the_writer_refuses_a_column_that_is_not_an_identifier(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a column name"):
        Warehouse(tmp_path / "w.duckdb").replace("scans", [], key="scan_id = '' OR 1=1 --")
