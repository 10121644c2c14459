"""Subject-level validation hold-out for the segmenter: no subject in training and validation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def validation_subjects(subject_ids: Sequence[str], fraction: float, seed: int) -> frozenset[str]:
    """A seeded ``fraction`` of the distinct subjects (at least one, never all)."""
    subjects = sorted(set(subject_ids))
    if len(subjects) < 2:
        raise ValueError(
            f"need annotated scans from at least 2 subjects to validate; got {len(subjects)}"
        )
    n_val = min(max(1, math.ceil(fraction * len(subjects))), len(subjects) - 1)
    order = np.random.default_rng(seed).permutation(len(subjects))
    return frozenset(subjects[i] for i in order[:n_val])
