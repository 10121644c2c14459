"""Cohort-level tests across layers: the paper's non-muscle vs muscle comparison and Friedman
(whether a single layer stands out is decided in ``verdicts``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import friedmanchisquare, wilcoxon

from layer_platform.labels import Layer
from layer_platform.saliency_names import (
    JOINT_ABLATION_COLUMN,
    MEASURED_ONLY_MODES,
    SWE_COVERAGE_COLUMN,
)
from layer_platform.statistics.bootstrap import bootstrap_mean_ci
from layer_platform.statistics.summary import subject_layer_matrix

NO_STANDOUT = "no layer stands out"


@dataclass(frozen=True)
class PairedComparison:
    """Non-muscle vs muscle per subject: both means, the mean of the subject differences
    (non-muscle minus muscle) with its bootstrap CI, and the Wilcoxon signed-rank test."""

    n_subjects: int
    non_muscle_mean: float
    muscle_mean: float
    mean_difference: float
    ci_low: float
    ci_high: float
    wilcoxon_statistic: float
    p_value: float


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman test of "all six layers have the same distribution" over complete subjects."""

    statistic: float
    p_value: float
    n_subjects: int


def _counted_fraction(rows: pd.DataFrame) -> pd.Series:
    """Each row's share of tissue voxels that its ``mean_saliency`` averages over: the layer's
    volume fraction, times its ``swe_coverage`` in ``MEASURED_ONLY_MODES``."""
    fraction = rows["volume_fraction"].astype(float)
    if SWE_COVERAGE_COLUMN not in rows or "input_mode" not in rows:
        return fraction
    coverage = rows[SWE_COVERAGE_COLUMN].astype(float)
    only_measured = rows["input_mode"].isin(MEASURED_ONLY_MODES) & coverage.notna()
    return fraction.where(~only_measured, fraction * coverage)


def tissue_means(rows: pd.DataFrame, *, ablation: bool) -> pd.DataFrame:
    """Per scan: ``non_muscle`` and ``muscle`` (columns ``scan_id, subject_id, non_muscle,
    muscle``), from one method's ``layer_saliency`` rows.

    A map method gives the mean saliency over every non-muscle tissue voxel (the layers'
    ``mean_saliency`` weighted by the voxels it averages over) and over muscle
    voxels: the paper's comparison (0.316 vs 0.317), not a share, which would be 1 minus twice
    the muscle share and so mostly muscle volume. A layer-value method (``ablation=True``)
    gives the sum of the five single-layer ``ablation_delta`` values vs muscle's (what
    ``layer_shapley`` is compared on; layer ablation uses ``joint_ablation_means``).
    Scans without muscle or without non-muscle tissue are left out.
    """
    value = rows["ablation_delta" if ablation else "mean_saliency"].astype(float)
    weight = pd.Series(1.0, index=rows.index) if ablation else _counted_fraction(rows)
    usable = rows.assign(value=value, weight=weight.astype(float))
    usable = usable[np.isfinite(usable["value"]) & (usable["weight"] > 0)]
    muscle = usable["layer"] == Layer.MUSCLE.key
    others = usable[~muscle].assign(weighted=lambda t: t["value"] * t["weight"])
    sums = others.groupby("scan_id")[["weighted", "weight"]].sum()
    non_muscle = sums["weighted"] if ablation else sums["weighted"] / sums["weight"]
    table = usable[muscle][["scan_id", "subject_id", "value"]].rename(columns={"value": "muscle"})
    table = table.assign(non_muscle=table["scan_id"].map(non_muscle))
    return table.dropna(subset=["non_muscle"])[["scan_id", "subject_id", "non_muscle", "muscle"]]


def joint_ablation_means(rows: pd.DataFrame) -> pd.DataFrame:
    """Per scan, as ``tissue_means``: the logit drop when every non-muscle layer is replaced at
    once (``non_muscle``) and when muscle is (``muscle``), from ``JOINT_ABLATION_COLUMN``.

    Summing single-layer drops misses evidence that two layers carry redundantly (a
    max-pooling head finds it in either), which the joint ablation removes. Scans whose rows
    lack the joint drops (written before #16, or without muscle or other tissue) are left out.
    """
    value = pd.to_numeric(rows[JOINT_ABLATION_COLUMN], errors="coerce").astype(float)
    usable = rows.assign(value=value)[np.isfinite(value)]
    muscle = usable["layer"] == Layer.MUSCLE.key
    non_muscle = usable[~muscle].groupby("scan_id")["value"].mean()
    table = usable[muscle][["scan_id", "subject_id", "value"]].rename(columns={"value": "muscle"})
    table = table.assign(non_muscle=table["scan_id"].map(non_muscle))
    return table.dropna(subset=["non_muscle"])[["scan_id", "subject_id", "non_muscle", "muscle"]]


def non_muscle_vs_muscle(
    table: pd.DataFrame, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> PairedComparison:
    """``tissue_means`` rows compared per subject (scans averaged per subject first)."""
    subjects = table.groupby("subject_id", sort=True)[["non_muscle", "muscle"]].mean()
    if len(subjects) < 2:
        raise ValueError(
            f"need at least 2 subjects with muscle and other tissue; got {len(subjects)}"
        )
    difference = (subjects["non_muscle"] - subjects["muscle"]).to_numpy()
    ci = bootstrap_mean_ci(
        difference, subjects.index, n_boot=n_boot, confidence=confidence, seed=seed
    )
    test = wilcoxon(subjects["non_muscle"], subjects["muscle"])
    return PairedComparison(
        n_subjects=len(subjects),
        non_muscle_mean=float(subjects["non_muscle"].mean()),
        muscle_mean=float(subjects["muscle"].mean()),
        mean_difference=ci.mean,
        ci_low=ci.ci_low,
        ci_high=ci.ci_high,
        wilcoxon_statistic=float(test.statistic),
        p_value=float(test.pvalue),
    )


def friedman_layers(table: pd.DataFrame, *, value: str = "value") -> FriedmanResult:
    """Friedman test on the subjects x layers matrix of subject means (complete rows only).

    Rank-based and blocked by subject, so a subject with high values everywhere weighs no more
    than one with low values.
    """
    matrix = subject_layer_matrix(table, value=value).dropna()
    if len(matrix) < 2:
        raise ValueError(f"need at least 2 subjects with all six layers; got {len(matrix)}")
    test = friedmanchisquare(*(matrix[column].to_numpy() for column in matrix.columns))
    return FriedmanResult(float(test.statistic), float(test.pvalue), len(matrix))
