"""Render query results for a terminal, a spreadsheet, a program or a document."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

FORMATS: tuple[str, ...] = ("table", "csv", "json", "markdown")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: timestamps in ISO 8601, NaN/NULL as None."""
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="s"))


def render(frame: pd.DataFrame, fmt: str) -> str:
    """``frame`` as text in one of ``FORMATS`` (no trailing newline)."""
    if fmt == "table":
        if frame.empty:
            return "  ".join(map(str, frame.columns)) + "\n(0 rows)"
        return frame.to_string(index=False)
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return json.dumps(records(frame), indent=2)
    if fmt == "markdown":
        return frame.to_markdown(index=False)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
