"""Will a cohort's subject split be accepted? Known from the simulated labels alone.

The split refuses a fold or a test set without one class (``classification.splits``), and it
only finds out after intake, preprocessing and segmentation. A simulated cohort's labels are
known before it is rendered, so the runner checks first and names the first salt that works:
choosing it looks at labels only, never at an outcome, so it is fair for a pre-registered
matrix.
"""

from __future__ import annotations

from layer_platform.classification.splits import LabelledRow, make_subject_split
from layer_platform.simulation.subjects import draw_subject
from layer_platform.validation.matrix import Scenario

#: How many salts to try before giving up (each is one hash per subject).
SALTS_TRIED = 100


def split_refusal(scenario: Scenario, test_fraction: float) -> str | None:
    """Why the scenario's split would be refused, with the first salt that works; None when
    its ``split_seed`` works. Every simulated subject has two labelled scans."""
    config = scenario.simulation()
    subjects = [draw_subject(config, index) for index in range(config.n_subjects)]
    rows = [
        LabelledRow(f"{s.subject_id}-{side}", s.subject_id, s.label)
        for s in subjects
        for side in ("L", "R")
    ]

    def refusal(salt: int) -> str | None:
        try:
            make_subject_split(rows, scenario.folds, test_fraction, salt)
        except ValueError as exc:
            return str(exc)
        return None

    problem = refusal(scenario.split_seed)
    if problem is None:
        return None
    works = next((salt for salt in range(SALTS_TRIED) if refusal(salt) is None), None)
    advice = (
        f"split_seed = {works} is the first salt that works (chosen from the labels alone)"
        if works is not None
        else f"no salt below {SALTS_TRIED} works: add subjects or use fewer folds"
    )
    salt = scenario.split_seed
    return f"the subject split with split_seed = {salt} would be refused: {problem}; {advice}"
