from __future__ import annotations

import math

import numpy as np
import pytest

from layer_platform.classification.metrics import (
    auc,
    bootstrap_auc_ci,
    brier_score,
    evaluate,
    sensitivity_specificity,
    youden_threshold,
)

Y = [0, 0, 1, 1]
P = [0.1, 0.4, 0.35, 0.8]


def test_auc_matches_hand_counted_pairs() -> None:
    # Positive 0.35 beats 0.1, loses to 0.4; positive 0.8 beats both: 3 of 4 pairs.
    assert auc(Y, P) == 0.75
    # A tie counts one half: 0.6 beats 0.2 and ties 0.6 -> 1.5 of 2.
    assert auc([0, 0, 1], [0.2, 0.6, 0.6]) == 0.75
    assert isinstance(auc(Y, P), float)


def test_youden_picks_the_first_best_threshold_and_sens_spec_follow() -> None:
    # J = 0.5 at 0.8 (sens .5, spec 1) and at 0.35 (sens 1, spec .5); the first is kept.
    assert youden_threshold(Y, P) == 0.8
    assert sensitivity_specificity(Y, P, 0.8) == (0.5, 1.0)
    assert sensitivity_specificity(Y, P, 0.35) == (1.0, 0.5)


def test_brier_score_by_hand() -> None:
    assert brier_score([0, 1], [0.2, 0.6]) == pytest.approx((0.2**2 + 0.4**2) / 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier_score([0, 1], [0.2, 1.5])


@pytest.mark.parametrize(
    "metric",
    [
        lambda y, p: auc(y, p),
        lambda y, p: youden_threshold(y, p),
        lambda y, p: sensitivity_specificity(y, p, 0.5),
        lambda y, p: bootstrap_auc_ci(y, p, ["a", "b", "c"]),
    ],
)
def test_one_class_only_is_a_clear_error(metric) -> None:
    with pytest.raises(ValueError, match="one class only"):
        metric([1, 1, 1], [0.2, 0.5, 0.9])


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="finite"):
        auc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="equal-length"):
        auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="0 \\(control\\) or 1"):
        auc([0, 2], [0.1, 0.2])


def _noisy_cohort(n_subjects: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n_subjects) % 2
    p = np.clip(0.5 + 0.25 * (y - 0.5) + rng.normal(0, 0.2, n_subjects), 0, 1)
    return y, p, [f"s{i:02d}" for i in range(n_subjects)]


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded() -> None:
    y, p, subjects = _noisy_cohort()
    low, high = bootstrap_auc_ci(y, p, subjects, n_bootstrap=500, seed=1)
    assert 0 <= low < auc(y, p) < high <= 1
    assert (low, high) == bootstrap_auc_ci(y, p, subjects, n_bootstrap=500, seed=1)


def test_bootstrap_resamples_subjects_so_duplicated_scans_do_not_shrink_the_ci() -> None:
    y, p, subjects = _noisy_cohort()
    one_scan = bootstrap_auc_ci(y, p, subjects, n_bootstrap=500, seed=1)
    # Every subject scanned twice with identical results: no new information.
    two_scans = bootstrap_auc_ci(
        np.repeat(y, 2), np.repeat(p, 2), np.repeat(subjects, 2).tolist(), n_bootstrap=500, seed=1
    )
    assert two_scans == pytest.approx(one_scan)
    # Treating the duplicates as independent (scan-level resampling) would shrink it.
    as_if_scans = bootstrap_auc_ci(
        np.repeat(y, 2), np.repeat(p, 2), [f"scan{i}" for i in range(2 * len(y))], 500, seed=1
    )
    assert as_if_scans[1] - as_if_scans[0] < 0.85 * (one_scan[1] - one_scan[0])


def test_perfect_separation_has_a_degenerate_ci_at_one() -> None:
    assert bootstrap_auc_ci(Y, [0.1, 0.2, 0.8, 0.9], list("abcd"), n_bootstrap=200) == (1.0, 1.0)


def test_evaluate_returns_plain_floats_at_the_given_threshold() -> None:
    y, p, subjects = _noisy_cohort()
    metrics = evaluate(y, p, subjects, threshold=0.5, n_bootstrap=200)
    assert metrics.threshold == 0.5
    assert metrics.auc == auc(y, p)
    assert (metrics.sensitivity, metrics.specificity) == sensitivity_specificity(y, p, 0.5)
    assert metrics.n_subjects == metrics.n_scans == 30
    assert all(type(v) in (float, int) for v in metrics.to_dict("test_").values())
    assert "test_auc_ci_low" in metrics.to_dict("test_")


def test_bootstrap_needs_two_subjects_per_class() -> None:
    with pytest.raises(ValueError, match="at least 2 subjects per class"):
        bootstrap_auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], ["a", "b", "c", "c"])


def test_evaluate_reports_an_unknown_ci_for_a_one_subject_class() -> None:
    """A tiny cohort's test set (1 MP subject) still gets its AUC; the CI is NaN, not invented."""
    metrics = evaluate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], ["a", "b", "c", "c"], threshold=0.5)
    assert metrics.auc == 1.0
    assert math.isnan(metrics.auc_ci_low) and math.isnan(metrics.auc_ci_high)
