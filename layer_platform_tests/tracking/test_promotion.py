from __future__ import annotations

import pytest

from layer_platform.tracking.promotion import should_promote


@pytest.mark.parametrize(
    ("candidate", "champion", "min_improvement", "promote", "reason_part"),
    [
        (0.80, None, 0.0, True, "no champion"),
        (0.50, None, 0.0, False, "floor"),  # chance level never becomes champion
        (0.45, None, 0.0, False, "floor"),
        (0.82, 0.80, 0.0, True, "beats"),
        (0.80, 0.80, 0.0, False, "not more than"),  # a tie keeps the champion
        (0.78, 0.80, 0.0, False, "not more than"),
        (0.82, 0.80, 0.05, False, "not more than"),  # better, but not by the margin
        (0.90, 0.80, 0.05, True, "beats"),
        (0.55, 0.52, 0.0, True, "beats"),
    ],
)
def test_promotion_table(candidate, champion, min_improvement, promote, reason_part) -> None:
    decision = should_promote(candidate, champion, min_improvement)
    assert decision.promote is promote
    assert reason_part in decision.reason


@pytest.mark.parametrize(
    ("candidate", "champion", "min_improvement"),
    [(1.2, None, 0.0), (float("nan"), 0.7, 0.0), (0.8, -0.1, 0.0), (0.8, 0.7, -0.01)],
)
def test_invalid_inputs_are_rejected(candidate, champion, min_improvement) -> None:
    with pytest.raises(ValueError):
        should_promote(candidate, champion, min_improvement)
