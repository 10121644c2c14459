"""Bridge from the platform's stored artifacts to classifier inputs (preprocessed NIfTI files)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from layer_platform.classification.data import Scan
from layer_platform.classification.splits import SplitRow, SubjectSplit
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.locations import Location


def load_scans(preprocessed_root: Location, rows: Iterable[Mapping[str, Any]]) -> list[Scan]:
    """Load labelled scans (``scan_id``, ``subject_id``, ``label``) from preprocessed files."""
    scans = []
    for row in rows:
        stored = load_preprocessed(preprocessed_root / row["scan_id"])
        scans.append(
            Scan(
                scan_id=row["scan_id"],
                subject_id=row["subject_id"],
                label=row["label"],
                bmode=stored.bmode,
                swe=stored.swe,
                swe_valid=stored.swe_valid,
            )
        )
    return scans


def split_from_records(
    records: Iterable[Mapping[str, Any]], *, n_folds: int, test_fraction: float, seed: int
) -> SubjectSplit:
    """Rebuild a split stored in the warehouse (``cohort_split`` rows)."""
    rows = tuple(
        SplitRow(
            scan_id=r["scan_id"],
            subject_id=r["subject_id"],
            label=r["label"],
            fold=None if r["fold"] is None or r["fold"] != r["fold"] else int(r["fold"]),
        )
        for r in records
    )
    return SubjectSplit(rows=rows, n_folds=n_folds, test_fraction=test_fraction, seed=seed)
