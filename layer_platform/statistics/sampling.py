"""Which scans a check re-attributes: a small, deterministic sample of distinct subjects."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def sample_scans(frame: pd.DataFrame, n: int, *, prefer: Sequence[str] = ("MP",)) -> list[str]:
    """Up to ``n`` scan ids from distinct subjects, labels in ``prefer`` first, then by id.

    Deterministic, so a check re-run on the same table uses the same scans.
    """
    scans = frame.drop_duplicates("scan_id")[["scan_id", "subject_id", "label"]]
    scans = scans.assign(order=~scans["label"].isin(list(prefer))).sort_values(
        ["order", "subject_id", "scan_id"]
    )
    chosen = scans.drop_duplicates("subject_id").head(n)
    return chosen["scan_id"].tolist()
