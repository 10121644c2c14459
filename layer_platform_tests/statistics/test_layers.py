"""Layer summaries and tests on constructed cohorts with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from layer_platform.labels import TISSUE_LAYERS
from layer_platform.statistics import friedman_layers, layer_summary, non_muscle_vs_muscle
from layer_platform.statistics.comparisons import tissue_means

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


def test_non_muscle_vs_muscle_compares_mean_saliency_over_voxels_by_hand():
    """Eight subjects; muscle is half the tissue with mean saliency m, the five other layers
    a tenth each with mean saliency 0.2, 0.2, 0.2, 0.2 and 0.7 (voxel mean 0.3). Every
    difference 0.3 - m is positive, so the exact two-sided Wilcoxon p is 2 / 2**8."""
    muscle = np.linspace(0.1, 0.25, 8)
    saliency = np.column_stack([np.tile([0.2, 0.2, 0.2, 0.2, 0.7], (8, 1)), muscle])
    rows = long_table(saliency).rename(columns={"value": "mean_saliency"})
    rows = rows.assign(volume_fraction=np.tile([0.1] * 5 + [0.5], 8))
    means = tissue_means(rows, ablation=False)
    assert means["non_muscle"].to_numpy() == pytest.approx(np.full(8, 0.3))
    result = non_muscle_vs_muscle(means)
    assert result.n_subjects == 8
    assert (result.non_muscle_mean, result.muscle_mean) == pytest.approx((0.3, muscle.mean()))
    assert result.mean_difference == pytest.approx(np.mean(0.3 - muscle))
    assert result.ci_low > 0
    assert (result.wilcoxon_statistic, result.p_value) == (0.0, pytest.approx(2 / 2**8))
    deltas = long_table(saliency).rename(columns={"value": "ablation_delta"})
    summed = tissue_means(deltas.assign(volume_fraction=np.nan), ablation=True)
    assert summed["non_muscle"].to_numpy() == pytest.approx(np.full(8, 1.5))


def test_swe_layer_means_are_weighted_by_their_measured_voxels():
    """``swe`` rows average measured voxels only: deep fascia (mean 0.7) is a quarter measured,
    dermis not at all (NaN), so non-muscle is (3 x 0.1 x 0.2 + 0.025 x 0.7) / 0.325. In
    ``bmode_swe`` every voxel counts (B-mode is measured), so coverage does not weigh: 0.3."""
    swe = long_table(np.array([[np.nan, 0.2, 0.2, 0.2, 0.7, 0.25]]))
    swe = swe.rename(columns={"value": "mean_saliency"}).assign(
        volume_fraction=[0.1] * 5 + [0.5],
        swe_coverage=[0.0, 1.0, 1.0, 1.0, 0.25, 1.0],
        input_mode="swe",
    )
    both = swe.assign(input_mode="bmode_swe", scan_id="scan1", subject_id=1)
    both.loc[both["layer"] == "dermis", "mean_saliency"] = 0.2
    means = tissue_means(pd.concat([swe, both]), ablation=False).set_index("scan_id")
    assert means.loc["scan0", "non_muscle"] == pytest.approx((0.06 + 0.0175) / 0.325)
    assert means.loc["scan1", "non_muscle"] == pytest.approx(0.3)
    assert means["muscle"].tolist() == [0.25, 0.25]


def test_friedman_by_hand():
    """Five subjects ranking the six layers identically: chi2 = 12/(n k (k+1)) sum R_j^2
    - 3 n (k+1) with R_j = 5 j: 12/210 * 2275 - 105 = 25, df 5."""
    rng = np.random.default_rng(0)
    values = np.arange(6)[None, :] + rng.uniform(0, 0.5, size=(5, 1))
    result = friedman_layers(long_table(values))
    assert (result.n_subjects, result.statistic) == (5, pytest.approx(25.0))
    assert result.p_value == pytest.approx(chi2.sf(25.0, 5))
