"""The checks of the ``saliency_summary`` step: declared once, built from the domain results.

``summary_non_empty`` qualifies ``layer_ranking`` (nothing to rank is a failure, and it blocks);
``model_randomization`` qualifies ``randomization_checks``, the table its evidence lands in.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from layer_platform.attribution.randomization_run import (
    MIN_DECISIVE_SCANS,
    RandomizationOutcome,
    RandomizationSettings,
)
from layer_platform.defs.assets.summary_tables import RANDOMIZATION, RANKING

SUMMARY_CHECK_SPECS = [
    dg.AssetCheckSpec(
        "summary_non_empty",
        asset=RANKING,
        blocking=True,
        description="the champion models have layer rows to rank",
    ),
    dg.AssetCheckSpec(
        "model_randomization",
        asset=RANDOMIZATION,
        description="layer profiles change when the model's weights are randomized (warn;"
        " a method that fails gets no layer finding)",
    ),
]


def summary_non_empty(ranking: pd.DataFrame, frame: pd.DataFrame) -> dg.AssetCheckResult:
    """Fails when the champions have no rows to rank."""
    return dg.AssetCheckResult(
        asset_key=RANKING,
        check_name="summary_non_empty",
        passed=not ranking.empty,
        metadata={"n_ranking_rows": len(ranking), "n_saliency_rows": len(frame)},
    )


def randomization_not_run() -> dg.AssetCheckResult:
    """Without champion rows there is nothing to randomize: a warning, never a silent pass."""
    return dg.AssetCheckResult(
        asset_key=RANDOMIZATION,
        check_name="model_randomization",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"reason": "no champion rows to check"},
    )


def model_randomization(
    outcome: RandomizationOutcome, settings: RandomizationSettings
) -> dg.AssetCheckResult:
    """Warns for every mode and method whose profile barely changes with random weights, and
    for modes whose sample was too small to decide or whose sampled maps were not finite
    (their verdicts read "not run")."""
    flagged = outcome.flagged()
    return dg.AssetCheckResult(
        asset_key=RANDOMIZATION,
        check_name="model_randomization",
        passed=not flagged and not outcome.undecided and not outcome.non_finite,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "bar": settings.bar,
            "flagged_methods": dg.MetadataValue.json(flagged),
            "correlations": dg.MetadataValue.json(outcome.results),
            "n_scans_per_mode": settings.n_scans,
            "undecided_modes": dg.MetadataValue.json(outcome.undecided),
            "non_finite_modes": dg.MetadataValue.json(outcome.non_finite),
            "min_decisive_scans": MIN_DECISIVE_SCANS,
            "reused_for_modes": dg.MetadataValue.json(outcome.reused),
        },
    )
