"""The DuckDB warehouse: short transactions, lock-aware retries, idempotent partition writes.

DuckDB admits one writing process at a time (and a read-only connection held by another
process also blocks writers), so every access opens a connection, does one transaction and
closes it; a lock held by another process is waited for with back-off instead of failing.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from layer_platform.locations import Location, as_location, is_remote, make_folder, publish
from layer_platform.warehouse.schema import TABLES, create_statements

log = logging.getLogger(__name__)
#: Every table and view of the warehouse, for the Parquet export.
LIST_RELATIONS = (
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
)


def _identifier(name: str) -> str:
    """Column names are code, never user input; still, refuse anything but a plain name."""
    if not name.isidentifier():
        raise ValueError(f"not a column name: {name!r}")
    return name


def is_lock_error(exc: Exception) -> bool:
    """True for DuckDB's "could not set lock" / "conflicting lock" errors."""
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text


def is_short_read(exc: Exception) -> bool:
    """True for DuckDB's "could not read enough bytes" on opening a file: a read-only open that
    raced a writer releasing the file (seen in the eight-writer concurrency test under load);
    the next attempt reads the finished file."""
    return "could not read enough bytes" in str(exc).lower()


@dataclass(frozen=True)
class Replacement:
    """One ``Warehouse.replace`` operation: ``rows`` replace the ``table`` rows whose ``key`` is
    in ``keys`` and whose columns equal ``scope`` (the whole table when ``key`` is None)."""

    table: str
    rows: Sequence[Mapping[str, Any]] | pd.DataFrame
    key: str | None
    keys: Sequence[Any] = ()
    scope: Mapping[str, Any] | None = None


def _arrow(rows: Sequence[Mapping[str, Any]] | pd.DataFrame) -> pa.Table | None:
    """The rows as an Arrow table (None for no rows), built before the lock is taken."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return pa.Table.from_pandas(frame, preserve_index=False) if len(frame) else None


def _apply(
    con: duckdb.DuckDBPyConnection, replacement: Replacement, incoming: pa.Table | None
) -> int:
    """Delete and insert one replacement inside the caller's transaction; rows inserted."""
    key, keys = replacement.key, replacement.keys
    conditions, params = [], []
    if key is not None:
        conditions.append(f"{_identifier(key)} IN (SELECT unnest(?))")
        params.append(list(keys))
    for column, value in (replacement.scope or {}).items():
        conditions.append(f"{_identifier(column)} = ?")
        params.append(value)
    where = " AND ".join(conditions) if conditions else "true"
    table = replacement.table
    if key is None or keys:
        con.execute(f"DELETE FROM {table} WHERE {where}", params)
    if incoming is None:
        return 0
    con.register("incoming", incoming)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
    con.unregister("incoming")
    return incoming.num_rows


class Warehouse:
    """A DuckDB file with the platform's tables.

    Args:
        path: the database file (created on first write).
        lock_timeout_s: how long to wait for another process's lock before giving up.
    """

    def __init__(self, path: Path, *, lock_timeout_s: float = 300.0):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open a connection, retrying while another process holds the file lock (and, read
        only, while a writer is still releasing the file)."""
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                transient = is_lock_error(exc) or (read_only and is_short_read(exc))
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        try:
            yield con
        finally:
            con.close()

    def ensure_schema(self) -> None:
        with self.connect() as con:
            for table in TABLES:
                for ddl in create_statements(table):
                    con.execute(ddl)

    def replace(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]] | pd.DataFrame,
        *,
        key: str | None,
        keys: Sequence[Any] = (),
        scope: Mapping[str, Any] | None = None,
    ) -> int:
        """Delete the rows being replaced and insert ``rows``, in one transaction.

        Deleted: rows whose ``key`` is in ``keys`` and whose columns equal ``scope`` (e.g. one
        model version's rows of a set of scans); with ``key=None`` the whole table is replaced.
        This is what makes re-materializing a partition idempotent: never duplicates, and a
        crash mid-way leaves the previous rows in place.
        """
        return self.replace_all([Replacement(table, rows, key=key, keys=keys, scope=scope)])

    def replace_all(self, replacements: Sequence[Replacement]) -> int:
        """Apply several ``replace`` operations (any tables) in one transaction; rows inserted.

        An asset that writes more than one table, or one table in several scopes, uses this so
        that a crash (even ``kill -9``) leaves either all of its rows or none of them: a reader
        never sees one table of a batch updated and its companion still old.
        """
        for replacement in replacements:
            if replacement.table not in TABLES:
                raise ValueError(f"unknown warehouse table {replacement.table!r}")
        if not replacements:
            return 0
        incoming = [_arrow(replacement.rows) for replacement in replacements]
        with self.connect() as con:
            for table in dict.fromkeys(r.table for r in replacements):
                for ddl in create_statements(table):
                    con.execute(ddl)
            con.execute("BEGIN TRANSACTION")
            try:
                inserted = sum(
                    _apply(con, replacement, rows)
                    for replacement, rows in zip(replacements, incoming, strict=True)
                )
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return inserted

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a read-only query with bound parameters (never string-format user input)."""
        if not self.path.exists():
            raise FileNotFoundError(
                f"no warehouse at {self.path}: run `layer-platform run` (or `make demo`) first"
            )
        with self.connect(read_only=True) as con:
            return con.execute(sql, params or []).fetch_df()

    def snapshot(self, target: Path) -> Path:
        """Copy the warehouse to ``target`` for an analyst's long session; returns ``target``.

        The copy is taken under a read-only connection (so no writer is mid-transaction) and
        lands atomically; a connection held open on the copy never blocks the pipeline. The
        copy (~20 ms for a 3 MB file) holds the lock no longer than one short query does.
        """
        if not self.path.exists():
            raise FileNotFoundError(f"no warehouse at {self.path} to snapshot")
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial_wal = Path(f"{partial}.wal")
        partial_wal.unlink(missing_ok=True)
        wal = Path(f"{self.path}.wal")
        with self.connect(read_only=True):
            shutil.copyfile(self.path, partial)
            # A writer that crashed leaves its log; the copy replays it like the original would.
            if wal.exists():
                shutil.copyfile(wal, partial_wal)
        if partial_wal.exists():  # fold the log into the copy: one self-contained file lands
            with duckdb.connect(str(partial)) as con:
                con.execute("CHECKPOINT")
        # A crash between these two steps leaves the previous snapshot (without its own log,
        # i.e. as of its last checkpoint), never a file paired with another file's log.
        Path(f"{target}.wal").unlink(missing_ok=True)
        os.replace(partial, target)
        return target

    def export_parquet(self, target: Location) -> dict[str, int]:
        """Write every table and view as ``<target>/<name>.parquet``; return rows per name.

        The analytics route past one machine (docs/scale-out.md): ``target`` may be object
        storage (``s3://...``), where DuckDB, Spark or pandas read the files without this
        database's lock. All tables come from one read-only connection, so they are mutually
        consistent; each file lands whole (local: temporary name, then rename; remote: one
        object ``put``).
        """
        target = as_location(target)
        with self.connect(read_only=True) as con:
            names = [row[0] for row in con.execute(LIST_RELATIONS).fetchall()]
            tables = {name: con.table(name).to_arrow_table() for name in names}
        make_folder(target)
        with tempfile.TemporaryDirectory(prefix="layer-export-") as staging:
            for name, table in tables.items():
                if is_remote(target):
                    local = Path(staging) / f"{name}.parquet"
                    pq.write_table(table, local)
                    publish([local], target)
                else:  # staged beside the target: a rename never crosses file systems
                    partial = Path(target) / f".{name}.parquet.partial"
                    pq.write_table(table, partial)
                    os.replace(partial, Path(target) / f"{name}.parquet")
        return {name: table.num_rows for name, table in tables.items()}

    def table_exists(self, table: str) -> bool:
        if not self.path.exists():
            return False
        found = self.query(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?", [table]
        )
        return bool(found["n"].iloc[0])
