"""Layer summaries and tests on constructed cohorts with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from layer_platform.labels import TISSUE_LAYERS
from layer_platform.statistics import (
    NO_STANDOUT,
    friedman_layers,
    layer_summary,
    non_muscle_vs_muscle,
    standout_layer,
)

KEYS = [layer.key for layer in TISSUE_LAYERS]


def long_table(values: np.ndarray, scans_per_subject: int = 1) -> pd.DataFrame:
    """Long table from ``values[scan, layer]``; scans are grouped into subjects in order."""
    n_scans = values.shape[0]
    return pd.DataFrame(
        {
            "scan_id": np.repeat([f"scan{i}" for i in range(n_scans)], 6),
            "subject_id": np.repeat(np.arange(n_scans) // scans_per_subject, 6),
            "layer": np.tile(KEYS, n_scans),
            "value": values.ravel(),
        }
    )


def test_layer_summary_by_hand():
    # Subject 0: scans with dermis 1 and 3 (subject mean 2); subject 1: dermis 6.
    values = np.zeros((4, 6))
    values[:, 0] = [1.0, 3.0, 6.0, 6.0]
    values[:, 5] = [1.0, 1.0, 1.0, 1.0]
    values[:, 4] = [np.nan, np.nan, np.nan, 9.0]  # deep fascia seen in one scan only
    summary = layer_summary(long_table(values, scans_per_subject=2))
    assert list(summary.index) == KEYS
    dermis = summary.loc["dermis"]
    assert (dermis["n_scans"], dermis["n_subjects"]) == (4, 2)
    assert (dermis["mean"], dermis["median"]) == (4.0, 4.0)
    assert (dermis["ci_low"], dermis["ci_high"]) == (2.0, 6.0)
    assert (summary.loc["deep_fascia", "n_scans"], summary.loc["deep_fascia", "mean"]) == (1, 9.0)
    assert summary["rank"].to_dict() == {
        "dermis": 2,
        "superficial_fat": 4,
        "superficial_fascia": 4,
        "deep_fat": 4,
        "deep_fascia": 1,
        "muscle": 3,
    }


def test_table_checks():
    table = long_table(np.ones((2, 6)))
    with pytest.raises(ValueError, match="lacks column"):
        layer_summary(table.drop(columns="subject_id"))
    with pytest.raises(ValueError, match="unknown tissue layer"):
        layer_summary(table.assign(layer="fascia"))


def test_non_muscle_vs_muscle_by_hand():
    """Eight subjects, muscle share 0.1..0.45: differences 1 - 2 m are all positive, so the
    exact two-sided Wilcoxon p is 2 / 2**8 and the statistic (smaller rank sum) is 0."""
    muscle = np.linspace(0.1, 0.45, 8)
    shares = np.column_stack([np.repeat((1 - muscle) / 5, 5).reshape(8, 5), muscle])
    result = non_muscle_vs_muscle(long_table(shares))
    assert result.n_subjects == 8
    assert result.mean_difference == pytest.approx(np.mean(1 - 2 * muscle))
    assert result.ci_low > 0
    assert (result.wilcoxon_statistic, result.p_value) == (0.0, pytest.approx(2 / 2**8))


def test_friedman_by_hand():
    """Five subjects ranking the six layers identically: chi2 = 12/(n k (k+1)) sum R_j^2
    - 3 n (k+1) with R_j = 5 j: 12/210 * 2275 - 105 = 25, df 5."""
    rng = np.random.default_rng(0)
    values = np.arange(6)[None, :] + rng.uniform(0, 0.5, size=(5, 1))
    result = friedman_layers(long_table(values))
    assert (result.n_subjects, result.statistic) == (5, pytest.approx(25.0))
    assert result.p_value == pytest.approx(chi2.sf(25.0, 5))


def test_null_cohort_has_no_standout_layer():
    values = np.random.default_rng(2).normal(1.0, 0.3, size=(24, 6))
    decision = standout_layer(long_table(values))
    assert (decision.layer, decision.statement) == (None, NO_STANDOUT)
    assert decision.friedman_p > 0.05


def test_planted_layer_stands_out():
    values = np.random.default_rng(3).normal(1.0, 0.3, size=(24, 6))
    values[:, 4] += 1.5
    decision = standout_layer(long_table(values))
    assert decision.layer == "deep_fascia"
    assert decision.statement.startswith("deep_fascia stands out")
    assert decision.friedman_p < 1e-6


def test_two_leading_layers_mean_no_single_standout():
    """Friedman rejects, but the top two intervals overlap: neither is reported."""
    values = np.random.default_rng(4).normal(1.0, 0.3, size=(24, 6))
    values[:, [2, 4]] += 1.5
    decision = standout_layer(long_table(values))
    assert decision.friedman_p < 1e-6
    assert decision.layer is None
