"""Binary classification metrics as plain floats, with subject-level uncertainty.

Operating threshold: chosen on out-of-fold (development) predictions, by Youden's J unless a
fixed threshold is configured, then applied unchanged to the held-out test subjects, so test
sensitivity and specificity are not tuned on test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def _validated(y_true: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray):
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape or y.size == 0:
        raise ValueError(f"need equal-length 1D labels and scores; got {y.shape} and {p.shape}")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("labels must be 0 (control) or 1 (MP)")
    if not np.all(np.isfinite(p)):
        raise ValueError("scores must be finite")
    return y.astype(np.int64), p


def _require_both_classes(y: np.ndarray, what: str) -> None:
    if y.min() == y.max():
        only = "MP" if y[0] == 1 else "control"
        raise ValueError(f"{what} is undefined with one class only (all {len(y)} are {only})")


def auc(y_true: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray) -> float:
    """ROC AUC (ties count one half)."""
    y, p = _validated(y_true, proba)
    _require_both_classes(y, "AUC")
    return float(roc_auc_score(y, p))


def bootstrap_auc_ci(
    y_true: Sequence[int] | np.ndarray,
    proba: Sequence[float] | np.ndarray,
    subject_ids: Sequence[str],
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of the AUC, resampling subjects (with all their scans), not scans.

    A subject's two sides are correlated; resampling scans would treat them as independent and
    give falsely narrow intervals. Each resample weights every scan by how often its subject was
    drawn, and the weighted AUC is computed exactly from the positive-negative pair matrix.
    Resamples that happen to contain one class only (rare with >= 2 subjects per class) are
    skipped.
    """
    y, p = _validated(y_true, proba)
    _require_both_classes(y, "AUC")
    if len(subject_ids) != len(y):
        raise ValueError("need one subject id per scan")
    subjects, subject_index = np.unique(np.asarray(subject_ids), return_inverse=True)
    pos, neg = y == 1, y == 0
    per_class = [len(np.unique(subject_index[mask])) for mask in (pos, neg)]
    if min(per_class) < 2:
        raise ValueError(
            f"a bootstrap CI needs at least 2 subjects per class; got {per_class[0]} MP and "
            f"{per_class[1]} control"
        )
    # wins[i, j]: positive i outranks negative j (1), ties (0.5), loses (0).
    wins = (p[pos][:, None] > p[neg][None, :]) + 0.5 * (p[pos][:, None] == p[neg][None, :])
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(subjects), np.full(len(subjects), 1 / len(subjects)), n_bootstrap)
    w_pos = draws[:, subject_index[pos]].astype(np.float64)
    w_neg = draws[:, subject_index[neg]].astype(np.float64)
    pairs = w_pos.sum(1) * w_neg.sum(1)
    usable = pairs > 0
    aucs = np.einsum("bi,ij,bj->b", w_pos[usable], wins, w_neg[usable]) / pairs[usable]
    alpha = (1 - level) / 2
    low, high = np.quantile(aucs, [alpha, 1 - alpha])
    return float(low), float(high)


def youden_threshold(
    y_true: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray
) -> float:
    """Threshold maximising sensitivity + specificity − 1 (first one on ties); predict MP at >=."""
    y, p = _validated(y_true, proba)
    _require_both_classes(y, "Youden's J")
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    # thresholds[0] is roc_curve's +inf sentinel (nothing predicted positive): never chosen.
    best = 1 + int(np.argmax(tpr[1:] - fpr[1:]))
    return float(thresholds[best])


def sensitivity_specificity(
    y_true: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray, threshold: float
) -> tuple[float, float]:
    """(sensitivity, specificity) predicting MP where ``proba >= threshold``."""
    y, p = _validated(y_true, proba)
    _require_both_classes(y, "sensitivity and specificity")
    predicted = p >= threshold
    return float(predicted[y == 1].mean()), float((~predicted[y == 0]).mean())


def brier_score(y_true: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray) -> float:
    """Mean squared error of the probabilities: calibration and sharpness together."""
    y, p = _validated(y_true, proba)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("Brier score needs probabilities in [0, 1]")
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class BinaryMetrics:
    """Headline metrics of one set of predictions, every field a plain number."""

    auc: float
    auc_ci_low: float
    auc_ci_high: float
    sensitivity: float
    specificity: float
    brier: float
    threshold: float
    n_scans: int
    n_subjects: int

    def to_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{key}": value for key, value in asdict(self).items()}


def evaluate(
    y_true: Sequence[int] | np.ndarray,
    proba: Sequence[float] | np.ndarray,
    subject_ids: Sequence[str],
    threshold: float,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> BinaryMetrics:
    """All headline metrics at a threshold fixed beforehand (see module docstring).

    With fewer than 2 subjects in a class (a tiny cohort's test set) the AUC CI is NaN:
    reported as unknown rather than failing the run or inventing an interval.
    """
    y = np.asarray(y_true)
    subjects = np.asarray(subject_ids)
    if min(len(np.unique(subjects[y == label])) for label in (0, 1)) < 2:
        low, high = math.nan, math.nan
    else:
        low, high = bootstrap_auc_ci(y_true, proba, subject_ids, n_bootstrap, level, seed)
    sensitivity, specificity = sensitivity_specificity(y_true, proba, threshold)
    return BinaryMetrics(
        auc=auc(y_true, proba),
        auc_ci_low=low,
        auc_ci_high=high,
        sensitivity=sensitivity,
        specificity=specificity,
        brier=brier_score(y_true, proba),
        threshold=float(threshold),
        n_scans=len(subject_ids),
        n_subjects=len(set(subject_ids)),
    )
