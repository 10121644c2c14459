"""The warehouse catalog: columns, keys and row counts read from DuckDB, as Dagster shows them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from layer_platform.defs.catalog import table_metadata, tables_metadata
from layer_platform.warehouse.catalog import Column, describe_tables
from layer_platform.warehouse.schema import DESCRIPTIONS, TABLES
from layer_platform.warehouse.store import Warehouse

SPLIT = [
    {"scan_id": f"S{i}", "subject_id": f"P{i}", "label": "MP", "role": "test", "fold": None}
    for i in range(3)
]


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    """A real DuckDB file with three ``cohort_split`` rows and an empty ``quarantine``."""
    warehouse = Warehouse(tmp_path / "layer.duckdb")
    warehouse.replace("cohort_split", SPLIT, key=None)
    warehouse.replace("quarantine", [], key=None)
    return warehouse


def test_every_table_has_a_description() -> None:
    assert set(DESCRIPTIONS) == set(TABLES)
    assert all(text.strip() for text in DESCRIPTIONS.values())


def test_columns_keys_and_rows_come_from_duckdb(warehouse: Warehouse) -> None:
    found = describe_tables(warehouse, ["cohort_split", "quarantine", "layer_ranking"])
    assert set(found) == {"cohort_split", "quarantine"}, "a table not created yet is absent"
    split = found["cohort_split"]
    assert split.columns == (
        Column("scan_id", "VARCHAR", nullable=False, primary_key=True),
        Column("subject_id", "VARCHAR", nullable=False, primary_key=False),
        Column("label", "VARCHAR", nullable=False, primary_key=False),
        Column("role", "VARCHAR", nullable=False, primary_key=False),
        Column("fold", "INTEGER", nullable=True, primary_key=False),
    )
    assert (split.row_count, found["quarantine"].row_count) == (3, 0)
    assert split.description == DESCRIPTIONS["cohort_split"]

    # The catalog, not the DDL text: a column added to the file shows up.
    with warehouse.connect() as con:
        con.execute("ALTER TABLE cohort_split ADD COLUMN note VARCHAR")
    columns = describe_tables(warehouse, ["cohort_split"])["cohort_split"].columns
    assert columns[-1] == Column("note", "VARCHAR", nullable=True, primary_key=False)


def test_no_file_and_unknown_tables(tmp_path: Path) -> None:
    assert describe_tables(Warehouse(tmp_path / "none.duckdb"), ["scans"]) == {}
    with pytest.raises(ValueError, match="not warehouse tables"):
        describe_tables(Warehouse(tmp_path / "none.duckdb"), ["scans; DROP TABLE scans"])


def test_dagster_metadata_of_main_and_companion_tables(warehouse: Warehouse) -> None:
    metadata = table_metadata(warehouse, "cohort_split", "quarantine", "layer_ranking")
    schema = metadata["dagster/column_schema"]
    assert isinstance(schema, dg.TableSchema)
    assert [(c.name, c.type) for c in schema.columns][:2] == [
        ("scan_id", "VARCHAR"),
        ("subject_id", "VARCHAR"),
    ]
    assert schema.columns[0].constraints.unique and not schema.columns[0].constraints.nullable
    assert metadata["dagster/row_count"] == 3
    assert metadata["dagster/table_name"] == "layer.main.cohort_split"
    assert metadata["quarantine/row_count"] == 0
    assert [c.name for c in metadata["quarantine/column_schema"].columns][:3] == [
        "folder",
        "scan_id",
        "reason",
    ]
    assert not any(key.startswith("layer_ranking/") for key in metadata)

    per_table = tables_metadata(warehouse, ["cohort_split", "quarantine"])
    assert per_table["quarantine"]["dagster/row_count"] == 0
    assert per_table["cohort_split"]["dagster/column_schema"] == schema
