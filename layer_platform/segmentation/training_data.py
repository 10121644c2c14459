"""The segmenter's training data: annotated scans split by subject into training and validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.locations import Location
from layer_platform.segmentation.splits import validation_subjects
from layer_platform.segmentation.training import Example


@dataclass(frozen=True)
class AnnotatedData:
    """Training and validation examples (no subject in both), every scan they came from, and
    each scan's role (``scan_id``, ``subject_id``, ``role``: train or val), logged to MLflow."""

    train: list[Example]
    val: list[Example]
    scan_ids: list[str]
    roles: list[dict[str, str]]


def annotated_data(
    rows: Sequence[Mapping[str, str]], preprocessed: Location, val_fraction: float, seed: int
) -> AnnotatedData:
    """Load the annotated scans ``rows`` (scan_id, subject_id) from ``preprocessed``."""
    held_out = validation_subjects([r["subject_id"] for r in rows], val_fraction, seed)
    examples = {}
    for row in rows:
        stored = load_preprocessed(preprocessed / row["scan_id"])
        examples[row["scan_id"]] = (stored.bmode, stored.layers)
    return AnnotatedData(
        train=[examples[r["scan_id"]] for r in rows if r["subject_id"] not in held_out],
        val=[examples[r["scan_id"]] for r in rows if r["subject_id"] in held_out],
        scan_ids=list(examples),
        roles=[{**r, "role": "val" if r["subject_id"] in held_out else "train"} for r in rows],
    )
