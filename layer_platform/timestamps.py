"""The one clock the platform's records read, so every stored time stamp means the same."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """The time stamp the tables store: UTC without a zone (DuckDB ``TIMESTAMP``)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
