"""Champion/challenger: should a newly trained model replace the current champion?

Both scores must come from the SAME subjects, neither model having trained on them, or the
comparison is meaningless: ``challenge_champion`` re-scores the champion the way the candidate
was scored before deciding, then moves the alias or records why not. Classifiers compete on
out-of-fold AUC over the development folds (``tracking.champion_score``): the test subjects
never choose a champion.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mlflow.entities.model_registry import ModelVersion
from torch import nn

from layer_platform.tracking.mlflow_registry import (
    Tracking,
    champion,
    load_version,
    promote,
    record_decision,
)


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def _check_score(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"{name} must be a score in [0, 1]; got {value}")


def should_promote(
    candidate_auc: float,
    champion_auc: float | None,
    min_improvement: float = 0.0,
    min_auc: float = 0.5,
    metric: str = "AUC",
) -> PromotionDecision:
    """Promote when the candidate beats the floor and the champion by more than ``min_improvement``.

    Ties keep the champion (no churn for no gain). ``min_auc`` stops a first model that is no
    better than chance from becoming champion just because there is none yet. Any score in
    [0, 1] where higher is better works (``metric`` names it in the reason, e.g. "mean Dice").
    """
    _check_score("candidate_auc", candidate_auc)
    if champion_auc is not None:
        _check_score("champion_auc", champion_auc)
    if not (math.isfinite(min_improvement) and min_improvement >= 0):
        raise ValueError(f"min_improvement must be >= 0; got {min_improvement}")
    if candidate_auc <= min_auc:
        return PromotionDecision(
            False, f"candidate {metric} {candidate_auc:.3f} is not above the floor {min_auc:.3f}"
        )
    if champion_auc is None:
        return PromotionDecision(True, f"no champion yet; candidate {metric} {candidate_auc:.3f}")
    gain = candidate_auc - champion_auc
    if gain > min_improvement:
        return PromotionDecision(
            True,
            f"candidate {metric} {candidate_auc:.3f} beats champion {champion_auc:.3f} "
            f"by {gain:+.3f} (> {min_improvement:.3f})",
        )
    return PromotionDecision(
        False,
        f"candidate {metric} {candidate_auc:.3f} vs champion {champion_auc:.3f}: gain {gain:+.3f} "
        f"is not more than {min_improvement:.3f}",
    )


def challenge_champion(
    tracking: Tracking,
    name: str,
    version: str,
    candidate_score: float,
    score_model: Callable[[nn.Module, ModelVersion], float],
    decide: Callable[[float, float | None], PromotionDecision] = should_promote,
) -> PromotionDecision:
    """Score the current champion with ``score_model``, decide, then move the alias or record why.

    ``score_model`` gets the champion and its registry version (whose tags say how it was
    trained) and must score it on data neither model trained on, the way the candidate's score
    was made, so both scores are comparable.
    Nothing is decided when the champion cannot be read: a registry error, or a champion whose
    files fail their SHA-256 check (``ModelIntegrityError``), fails the step loudly, the alias
    stays put and the challenger keeps no decision, so the next run retrains and challenges
    again. A corrupt champion is never treated as "no champion": replacing it needs a person
    to remove its alias (``docs/security.md``).
    """
    current = champion(tracking, name)
    champion_score = (
        None if current is None else score_model(load_version(tracking, current), current)
    )
    decision = decide(candidate_score, champion_score)
    record = promote if decision.promote else record_decision
    record(tracking, name, version, decision.reason)
    return decision
