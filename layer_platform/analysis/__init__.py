"""The analyst path: read-only queries, snapshots and exports of the warehouse.

Importing this package loads DuckDB, pandas and the path helpers only (no torch, no Dagster),
so a notebook's ``import layer_platform; layer_platform.query(...)`` starts in about a second.
"""

from layer_platform.analysis.errors import (
    AnalysisError,
    BadQuery,
    WarehouseLocked,
    WarehouseMissing,
    WriteRefused,
)
from layer_platform.analysis.reader import ReadOnlyWarehouse, connect, query

__all__ = [
    "AnalysisError",
    "BadQuery",
    "ReadOnlyWarehouse",
    "WarehouseLocked",
    "WarehouseMissing",
    "WriteRefused",
    "connect",
    "query",
]
