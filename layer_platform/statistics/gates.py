"""The layer tests a finding must pass: top layer vs every other layer with Holm's correction,
and how often the top layer ranks first (the classifier's own test is in ``skill``).

Subjects are the unit: a subject's scans share anatomy and pathology, so tests pair, and
resampling draws, subjects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

#: Significance level of every gate (classifier skill, Holm-corrected layer tests).
ALPHA = 0.05


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence)."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    m = len(p)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def top_vs_others(matrix: pd.DataFrame, top: str) -> dict[str, float]:
    """One-sided paired Wilcoxon p (``top`` > layer) per other layer, over complete subjects.

    A layer whose differences with ``top`` are all zero gets p = 1. The exact null is used up
    to 50 subjects without ties or zero differences, the normal approximation otherwise
    (scipy would fall back to a 9,999-draw permutation test per comparison: hundreds of
    comparisons per summary).
    """
    complete = matrix.dropna()
    found = {}
    for layer in complete.columns.drop(top):
        difference = complete[top].to_numpy() - complete[layer].to_numpy()
        if not np.any(difference):
            found[layer] = 1.0
            continue
        found[layer] = float(
            wilcoxon(difference, alternative="greater", method=_method(difference)).pvalue
        )
    return found


def _method(difference: np.ndarray) -> str:
    magnitudes = np.abs(difference)
    exact = len(difference) <= 50 and np.all(magnitudes > 0)
    return "exact" if exact and np.unique(magnitudes).size == magnitudes.size else "approx"


def rank1_probability(matrix: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.Series:
    """Per layer, the share of subject-bootstrap resamples in which it has the highest mean.

    Resamples subjects (rows of the subjects x layers matrix of subject means); layers missing
    for a subject do not count for it. Sums to 1 over the layers (ties go to the first layer).
    """
    values = matrix.to_numpy(float)
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, len(values), size=(n_boot, len(values)))]
    finite = np.isfinite(draws)
    counts = finite.sum(axis=1)
    totals = np.where(finite, draws, 0.0).sum(axis=1)
    means = np.divide(totals, counts, out=np.full(totals.shape, np.nan), where=counts > 0)
    means = np.where(np.isnan(means), -np.inf, means)
    firsts = np.bincount(means.argmax(axis=1), minlength=values.shape[1])
    return pd.Series(firsts / n_boot, index=matrix.columns)
