"""Subject-level bootstrap: the subject, not the scan, is the unit of replication.

Scans of one subject share anatomy and pathology, so treating them as independent would make
a subject scanned five times look like five subjects and shrink every interval. Scans are
averaged per subject first, and subjects are resampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class MeanCI:
    """Mean of subject means with a percentile bootstrap interval."""

    mean: float
    ci_low: float
    ci_high: float
    n_subjects: int


def subject_means(values: Sequence[float] | np.ndarray, subject_ids: Sequence) -> pd.Series:
    """Average each subject's scans (non-finite values dropped); indexed by subject id."""
    frame = pd.DataFrame({"subject": np.asarray(subject_ids), "value": np.asarray(values, float)})
    frame = frame[np.isfinite(frame["value"])]
    return frame.groupby("subject", sort=True)["value"].mean()


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    subject_ids: Sequence,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MeanCI:
    """Mean over subjects of per-subject mean values, with a subject-resampling bootstrap CI.

    Seeded, so a rerun on the same table reproduces the interval exactly.
    """
    means = subject_means(values, subject_ids).to_numpy()
    if means.size == 0:
        raise ValueError("no finite values to summarise")
    rng = np.random.default_rng(seed)
    resampled = means[rng.integers(0, means.size, size=(n_boot, means.size))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return MeanCI(float(means.mean()), float(low), float(high), int(means.size))
