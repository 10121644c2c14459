"""What DuckDB's own catalog says about the warehouse tables: columns, keys and row counts.

The Dagster catalog shows each table's column schema and row count; reading them from
``duckdb_columns()`` / ``duckdb_constraints()`` (not from a list kept beside ``schema.py``)
means the catalog can never drift from the file analysts query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from layer_platform.warehouse.schema import DESCRIPTIONS, TABLES
from layer_platform.warehouse.store import Warehouse

COLUMNS = """
    SELECT table_name, column_name, data_type, is_nullable
    FROM duckdb_columns()
    WHERE schema_name = 'main' AND database_name = current_database()
      AND table_name IN (SELECT unnest(?))
    ORDER BY table_name, column_index
"""
PRIMARY_KEYS = """
    SELECT table_name, constraint_column_names
    FROM duckdb_constraints()
    WHERE constraint_type = 'PRIMARY KEY' AND schema_name = 'main'
      AND database_name = current_database() AND table_name IN (SELECT unnest(?))
"""


@dataclass(frozen=True)
class Column:
    """One column as DuckDB declares it."""

    name: str
    data_type: str
    nullable: bool
    primary_key: bool


@dataclass(frozen=True)
class TableInfo:
    """One warehouse table: its description (``schema.DESCRIPTIONS``), columns and rows."""

    name: str
    description: str
    columns: tuple[Column, ...]
    row_count: int


def describe_tables(warehouse: Warehouse, tables: Sequence[str]) -> dict[str, TableInfo]:
    """The tables of ``tables`` that exist in the warehouse, read in one short read-only
    connection (a missing file or table is simply absent from the answer)."""
    unknown = [table for table in tables if table not in TABLES]
    if unknown:
        raise ValueError(f"not warehouse tables: {unknown}")
    if not warehouse.path.exists():
        return {}
    names = list(dict.fromkeys(tables))
    with warehouse.connect(read_only=True) as con:
        columns = con.execute(COLUMNS, [names]).fetchall()
        keys = {
            table: set(key_columns)
            for table, key_columns in con.execute(PRIMARY_KEYS, [names]).fetchall()
        }
        found = list(dict.fromkeys(table for table, *_ in columns))
        # names are checked against TABLES above, so quoting them is safe
        counts = {
            table: int(con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
            for table in found
        }
    by_table: dict[str, list[Column]] = {table: [] for table in found}
    for table, column, data_type, nullable in columns:
        primary = column in keys.get(table, set())
        by_table[table].append(Column(column, data_type, bool(nullable), primary))
    return {
        table: TableInfo(table, DESCRIPTIONS[table], tuple(by_table[table]), counts[table])
        for table in names
        if table in by_table
    }
