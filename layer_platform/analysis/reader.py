"""Read-only access to the warehouse for analysts: the CLI's ``sql`` and the notebook API.

Every query opens a read-only connection, runs, and closes it, so the pipeline's writers are
blocked for the length of one query only (a read-only connection held by another process blocks
every DuckDB writer). For a long session, take a ``snapshot`` and open the copy instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from layer_platform.analysis.errors import BadQuery, WarehouseLocked, WarehouseMissing, WriteRefused
from layer_platform.locations import Location
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.store import Warehouse, is_lock_error

#: Statement types that only read: everything else (INSERT, COPY, ATTACH, SET, PRAGMA …) is
#: refused before a connection is opened. An EXPLAIN is judged by the statement it explains
#: (``EXPLAIN ANALYZE`` runs it: ``EXPLAIN ANALYZE COPY … TO`` writes a file).
READ_ONLY_STATEMENTS = frozenset({duckdb.StatementType.SELECT})
EXPLAIN_PREFIX = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+|\([^)]*\)\s*)?", re.IGNORECASE)
#: How long a reader waits for a writer's lock by default: writers hold it for one short
#: transaction, so a minute covers a busy pipeline without hanging a script forever.
DEFAULT_WAIT_S = 60.0


def _statement_types(sql: str) -> Iterator[str]:
    """The type of each statement in ``sql``; an EXPLAIN's is that of the statement it explains."""
    for statement in duckdb.extract_statements(sql):
        explained = EXPLAIN_PREFIX.sub("", statement.query, count=1)
        # an EXPLAIN form the prefix does not match is reported (and refused) as EXPLAIN
        if statement.type != duckdb.StatementType.EXPLAIN or explained == statement.query:
            yield statement.type.name
        else:
            yield from _statement_types(explained)


def check_read_only(sql: str) -> None:
    """Raise ``BadQuery`` for SQL that does not parse, ``WriteRefused`` for anything but reads."""
    try:
        types = list(_statement_types(sql))
    except duckdb.Error as exc:
        raise BadQuery(_first_line(exc)) from None
    if not types:
        raise BadQuery("no SQL statement given")
    allowed = {t.name for t in READ_ONLY_STATEMENTS}
    refused = sorted(set(types) - allowed)
    if refused:
        raise WriteRefused(
            f"only SELECT statements (or EXPLAIN of one) are allowed; got {', '.join(refused)}"
        )


def _first_line(exc: Exception) -> str:
    """DuckDB's message without the caret diagram that follows it."""
    return " ".join(str(exc).strip().splitlines()[0].split())


class ReadOnlyWarehouse:
    """The warehouse seen by an analyst: queries return DataFrames and never write.

    Args:
        path: the DuckDB file (``LayerPaths.warehouse``).
        wait_s: how long to wait for a writer's lock before raising ``WarehouseLocked``.
    """

    def __init__(self, path: Path, *, wait_s: float = DEFAULT_WAIT_S):
        self.path = Path(path)
        self.wait_s = wait_s

    def __repr__(self) -> str:
        return f"ReadOnlyWarehouse({str(self.path)!r})"

    def store(self) -> Warehouse:
        """The underlying store, after checking that the file exists (``WarehouseMissing``)."""
        if not self.path.is_file():
            raise WarehouseMissing(
                f"no warehouse at {self.path}: run `layer-platform run` first"
                " (or set LAYER_HOME / LAYER_WAREHOUSE)"
            )
        return Warehouse(self.path, lock_timeout_s=self.wait_s)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run read-only SQL (bound ``params`` for ``?``/``$name``); the last statement's rows."""
        check_read_only(sql)
        store = self.store()
        with self.lock_errors():
            try:
                return store.query(sql, params)
            except duckdb.Error as exc:
                if is_lock_error(exc):
                    raise
                raise BadQuery(_first_line(exc)) from None

    def tables(self) -> list[str]:
        """Every table and view, by name."""
        frame = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            " ORDER BY 1"
        )
        return frame["table_name"].tolist()

    def require(self, table: str, hint: str) -> None:
        """Raise ``WarehouseMissing`` (with ``hint``) unless ``table`` exists."""
        if table not in self.tables():
            raise WarehouseMissing(f"no {table} table in {self.path}: {hint}")

    def snapshot(self, target: str | Path) -> Path:
        """A consistent private copy at ``target`` (see ``Warehouse.snapshot``)."""
        target = Path(target).expanduser().resolve()
        if target == self.path.resolve():
            raise WriteRefused(f"{target} is the warehouse itself; choose another path")
        store = self.store()
        with self.lock_errors():
            return store.snapshot(target)

    def export_parquet(self, target: Location) -> dict[str, int]:
        """Every table and view as Parquet (see ``Warehouse.export_parquet``)."""
        store = self.store()
        with self.lock_errors():
            return store.export_parquet(target)

    @contextmanager
    def lock_errors(self) -> Iterator[None]:
        """Turn DuckDB's lock error (raised once the wait is over) into ``WarehouseLocked``."""
        try:
            yield
        except duckdb.Error as exc:
            if not is_lock_error(exc):
                raise
            raise WarehouseLocked(
                f"{self.path} stayed locked by a writer for {self.wait_s:g} s; retry, raise"
                " --wait, or query a `layer-platform snapshot`"
            ) from None


def connect(home: str | Path | None = None, *, wait_s: float = DEFAULT_WAIT_S) -> ReadOnlyWarehouse:
    """The warehouse under ``home``, or where ``LAYER_HOME``/``LAYER_WAREHOUSE`` say (as the
    CLI resolves it). Holds no connection: each query opens and closes its own.

    Raises:
        WarehouseMissing: there is no warehouse file there yet.
    """
    paths = LayerPaths.from_env() if home is None else LayerPaths.under(home)
    reader = ReadOnlyWarehouse(paths.warehouse, wait_s=wait_s)
    reader.store()  # fail here, not at the first query, if there is nothing to read
    return reader


def query(
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    home: str | Path | None = None,
    wait_s: float = DEFAULT_WAIT_S,
) -> pd.DataFrame:
    """Run one read-only query against the warehouse and return a DataFrame."""
    return connect(home, wait_s=wait_s).query(sql, params)
