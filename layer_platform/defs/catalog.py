"""Warehouse tables in the Dagster catalog: column schema, row count and name per materialization.

Every asset that writes warehouse tables attaches this metadata of each table it wrote, read
from DuckDB's own catalog once per run (``warehouse/catalog.py``): the whole table's row count,
not the rows of one partition, so a batched run of many scan partitions pays one query.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from layer_platform.warehouse.catalog import TableInfo, describe_tables
from layer_platform.warehouse.store import Warehouse


def column_schema(info: TableInfo) -> dg.TableSchema:
    """DuckDB's columns as a Dagster ``TableSchema`` (type, nullability, primary key)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                column.name,
                column.data_type,
                constraints=dg.TableColumnConstraints(
                    nullable=column.nullable,
                    unique=column.primary_key,
                    other=["primary key"] if column.primary_key else [],
                ),
            )
            for column in info.columns
        ]
    )


def _table_set(warehouse: Warehouse, info: TableInfo) -> dict[str, Any]:
    """The ``dagster/*`` table entries (``TableMetadataSet``'s keys) of one table."""
    return {
        "dagster/column_schema": column_schema(info),
        "dagster/row_count": info.row_count,
        "dagster/table_name": f"{warehouse.path.stem}.main.{info.name}",
    }


def table_metadata(warehouse: Warehouse, main: str, *others: str) -> dict[str, Any]:
    """``dagster/column_schema``, ``dagster/row_count`` and ``dagster/table_name`` of ``main``
    (what the UI's asset page shows), and ``<table>/column_schema`` and ``<table>/row_count``
    of every other table the asset writes. A table not created yet contributes nothing."""
    infos = describe_tables(warehouse, [main, *others])
    metadata: dict[str, Any] = {}
    if main in infos:
        metadata |= _table_set(warehouse, infos[main])
    for table in others:
        if table in infos:
            metadata[f"{table}/column_schema"] = column_schema(infos[table])
            metadata[f"{table}/row_count"] = infos[table].row_count
    return metadata


def tables_metadata(warehouse: Warehouse, tables: list[str]) -> dict[str, dict[str, Any]]:
    """For a multi-asset with one asset per table: each table's own ``dagster/*`` entries,
    read in one connection."""
    infos = describe_tables(warehouse, tables)
    return {table: _table_set(warehouse, info) for table, info in infos.items()}
