"""Scans and model-ready items, held in memory because the cohort is small (tens of subjects)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layer_platform.errors import ScanError
from layer_platform.labels import PAIN_LABELS, POSITIVE_LABEL


def encode_label(label: str) -> int:
    """1 for MP (the positive class), 0 for control; anything else is a contract violation."""
    if label not in PAIN_LABELS:
        raise ValueError(f"unknown pain label {label!r}; expected one of {PAIN_LABELS}")
    return int(label == POSITIVE_LABEL)


@dataclass(frozen=True, eq=False)
class Scan:
    """One preprocessed, labelled scan; arrays in canonical (lateral, depth, sweep) order.

    Args:
        scan_id: unique scan id.
        subject_id: the person scanned; both sides of a subject share it (and the label).
        label: ``"MP"`` or ``"control"``; unlabelled scans never reach the classifier.
        bmode: B-mode intensities normalised to about [0, 1].
        swe: shear-wave stiffness in kPa on the B-mode grid, or None when not acquired.
        swe_valid: where ``swe`` is a real measurement; given exactly when ``swe`` is.
    """

    scan_id: str
    subject_id: str
    label: str
    bmode: np.ndarray
    swe: np.ndarray | None = None
    swe_valid: np.ndarray | None = None

    def __post_init__(self) -> None:
        encode_label(self.label)
        if (self.swe is None) != (self.swe_valid is None):
            raise ScanError(
                "SWE and its validity mask must be given together", scan_id=self.scan_id
            )

    @property
    def has_swe(self) -> bool:
        """True when at least one SWE voxel is valid: an all-invalid map carries no stiffness."""
        return self.swe_valid is not None and bool(np.any(self.swe_valid))


@dataclass(frozen=True, eq=False)
class Item:
    """One network input: ``x`` is float32 ``(channels, lateral, depth, sweep)``."""

    scan_id: str
    subject_id: str
    label: str
    x: np.ndarray

    def __post_init__(self) -> None:
        encode_label(self.label)
        if self.x.ndim != 4:
            raise ValueError(f"item {self.scan_id!r}: x must be (C, L, D, S); got {self.x.shape}")

    @property
    def y(self) -> int:
        return encode_label(self.label)
