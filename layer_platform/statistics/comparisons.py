"""Cohort-level tests across layers: the paper's non-muscle vs muscle comparison, Friedman, and
the rule that decides whether any single layer is reported as standing out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import friedmanchisquare, wilcoxon

from layer_platform.labels import Layer
from layer_platform.statistics.bootstrap import bootstrap_mean_ci
from layer_platform.statistics.summary import layer_summary, subject_layer_matrix

NO_STANDOUT = "no layer stands out"


@dataclass(frozen=True)
class PairedComparison:
    """Per-subject ``non_muscle - muscle``: mean with bootstrap CI, Wilcoxon signed-rank test."""

    n_subjects: int
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


@dataclass(frozen=True)
class Standout:
    """The decision: ``layer`` is None unless the top-ranked layer passes the rule."""

    layer: str | None
    statement: str
    friedman_p: float
    summary: pd.DataFrame


def non_muscle_vs_muscle(
    table: pd.DataFrame,
    *,
    value: str = "value",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Summed share of the five non-muscle layers vs the muscle share, paired by subject.

    ``value`` should hold ``saliency_share``: the two then sum to 1 per scan, so a positive
    difference means the model looks mostly outside muscle. Subjects lacking any layer's value
    are left out.
    """
    matrix = subject_layer_matrix(table, value=value).dropna()
    if len(matrix) < 2:
        raise ValueError(f"need at least 2 subjects with all six layers; got {len(matrix)}")
    muscle = matrix[Layer.MUSCLE.key].to_numpy()
    non_muscle = matrix.drop(columns=Layer.MUSCLE.key).sum(axis=1).to_numpy()
    difference = non_muscle - muscle
    ci = bootstrap_mean_ci(
        difference, matrix.index, n_boot=n_boot, confidence=confidence, seed=seed
    )
    test = wilcoxon(non_muscle, muscle)
    return PairedComparison(
        n_subjects=len(matrix),
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


def standout_layer(
    table: pd.DataFrame,
    *,
    value: str = "value",
    alpha: float = 0.05,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Standout:
    """Report the top layer only if it clearly beats every other layer; else "no layer stands
    out".

    Rule (both must hold): the Friedman test rejects "all layers alike" at ``alpha``, and the
    top layer's bootstrap CI lower bound exceeds the CI upper bound of every other layer.
    Friedman alone says *some* layers differ, not that one leads; CI separation alone ignores
    the pairing by subject. Non-overlapping intervals are a conservative test, chosen so the
    platform rather says nothing than names a layer by chance.
    """
    summary = layer_summary(table, value=value, n_boot=n_boot, confidence=confidence, seed=seed)
    friedman_p = friedman_layers(table, value=value).p_value
    top = summary["mean"].idxmax()
    others = summary.drop(index=top)
    separated = bool(np.all(summary.at[top, "ci_low"] > others["ci_high"]))
    if friedman_p < alpha and separated:
        statement = (
            f"{top} stands out: mean {summary.at[top, 'mean']:.3g} "
            f"(CI {summary.at[top, 'ci_low']:.3g} to {summary.at[top, 'ci_high']:.3g}) above "
            f"every other layer's CI; Friedman p = {friedman_p:.2g}"
        )
        return Standout(top, statement, friedman_p, summary)
    return Standout(None, NO_STANDOUT, friedman_p, summary)
