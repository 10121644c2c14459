"""The subject-level bootstrap: subjects, not scans, are resampled."""

from __future__ import annotations

import numpy as np
import pytest

from layer_platform.statistics import bootstrap_mean_ci, subject_means


def test_scans_are_averaged_per_subject_first():
    means = subject_means([1.0, 1.0, 1.0, 3.0, np.nan], ["a", "a", "a", "b", "b"])
    assert means.to_dict() == {"a": 1.0, "b": 3.0}
    assert bootstrap_mean_ci([1.0, 1.0, 1.0, 3.0], ["a", "a", "a", "b"]).mean == 2.0


def test_two_subjects_give_the_full_range():
    """Resampling 2 subjects yields means 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so the 95 %
    interval is [0, 1] however many scans subject "a" has; resampling scans would give a narrow
    interval near 0.2."""
    ci = bootstrap_mean_ci([0.0, 0.0, 0.0, 0.0, 1.0], ["a", "a", "a", "a", "b"], seed=1)
    assert (ci.mean, ci.ci_low, ci.ci_high, ci.n_subjects) == (0.5, 0.0, 1.0, 2)


def test_interval_covers_the_true_mean_and_is_reproducible():
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(30), 3)
    values = rng.normal(5.0, 1.0, size=30)[subjects] + rng.normal(0.0, 0.3, size=90)
    ci = bootstrap_mean_ci(values, subjects, seed=7)
    assert ci.ci_low < 5.0 < ci.ci_high
    assert ci.ci_low < ci.mean < ci.ci_high
    assert ci == bootstrap_mean_ci(values, subjects, seed=7)
    narrower = bootstrap_mean_ci(values, subjects, confidence=0.5, seed=7)
    assert ci.ci_low < narrower.ci_low < narrower.ci_high < ci.ci_high


def test_duplicating_a_subjects_scans_does_not_narrow_the_interval():
    rng = np.random.default_rng(1)
    subjects = np.repeat(np.arange(12), 2)
    values = rng.normal(size=24)
    base = bootstrap_mean_ci(values, subjects, seed=3)
    copies = bootstrap_mean_ci(
        np.concatenate([values, *[values[subjects == 4]] * 10]),
        np.concatenate([subjects, [4] * 20]),
        seed=3,
    )
    assert copies == base


def test_no_values_is_an_error():
    with pytest.raises(ValueError, match="no finite"):
        bootstrap_mean_ci([np.nan], ["a"])
