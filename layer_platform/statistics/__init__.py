"""Cohort statistics over per-layer attribution tables (numpy, scipy, pandas only).

Subjects are the unit: scans are averaged per subject before any mean, interval or test.
"""

from layer_platform.statistics.bootstrap import MeanCI, bootstrap_mean_ci, subject_means
from layer_platform.statistics.comparisons import (
    NO_STANDOUT,
    FriedmanResult,
    PairedComparison,
    Standout,
    friedman_layers,
    non_muscle_vs_muscle,
    standout_layer,
)
from layer_platform.statistics.summary import layer_summary, subject_layer_matrix

__all__ = [
    "NO_STANDOUT",
    "FriedmanResult",
    "MeanCI",
    "PairedComparison",
    "Standout",
    "bootstrap_mean_ci",
    "friedman_layers",
    "layer_summary",
    "non_muscle_vs_muscle",
    "standout_layer",
    "subject_layer_matrix",
    "subject_means",
]
