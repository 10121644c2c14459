"""Champion/challenger: should a newly trained model replace the current champion?

Pure logic; the caller records the decision. Both AUCs must come from the SAME held-out test
subjects (neither model trained on them), or the comparison is meaningless: re-score the champion
on the candidate's test subjects when the cohort or the split has changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def _check_auc(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"{name} must be an AUC in [0, 1]; got {value}")


def should_promote(
    candidate_auc: float,
    champion_auc: float | None,
    min_improvement: float = 0.0,
    min_auc: float = 0.5,
) -> PromotionDecision:
    """Promote when the candidate beats chance and the champion by more than ``min_improvement``.

    Ties keep the champion (no churn for no gain). ``min_auc`` stops a first model that is no
    better than chance from becoming champion just because there is none yet.
    """
    _check_auc("candidate_auc", candidate_auc)
    if champion_auc is not None:
        _check_auc("champion_auc", champion_auc)
    if not (math.isfinite(min_improvement) and min_improvement >= 0):
        raise ValueError(f"min_improvement must be >= 0; got {min_improvement}")
    if candidate_auc <= min_auc:
        return PromotionDecision(
            False, f"candidate AUC {candidate_auc:.3f} is not above the floor {min_auc:.3f}"
        )
    if champion_auc is None:
        return PromotionDecision(True, f"no champion yet; candidate AUC {candidate_auc:.3f}")
    gain = candidate_auc - champion_auc
    if gain > min_improvement:
        return PromotionDecision(
            True,
            f"candidate AUC {candidate_auc:.3f} beats champion {champion_auc:.3f} by {gain:+.3f} "
            f"(> {min_improvement:.3f})",
        )
    return PromotionDecision(
        False,
        f"candidate AUC {candidate_auc:.3f} vs champion {champion_auc:.3f}: gain {gain:+.3f} "
        f"is not more than {min_improvement:.3f}",
    )
