"""The pre-registered decision rule of a validation matrix, judged on its default method's rows
(``docs/results/validation-preregistration.md``).

A row is one cohort x input mode. A **driver row** sees a planted layer; it counts when the
mode's classifier beats chance and is recovered when the planted layer ranks first and stands
out. A **null row** is a row of a null cohort (nothing planted in any modality); the rows of a
driver cohort's modes that see no driver are reported, not decided. Three rules:

1. recovery: at least ``RECOVERY_TARGET`` of counted driver rows are recovered;
2. quiet nulls: at least ``QUIET_TARGET`` of null rows have no layer standing out;
3. flagged confounding: no row of a site-confounded null reports a layer without the
   ``confounded_by_site`` flag.

A rule no row counts for yet (a matrix still running) is neither met nor missed.
"""

from __future__ import annotations

import pandas as pd

from layer_platform.validation.matrix import Matrix, Scenario

RECOVERY_TARGET = 0.90
QUIET_TARGET = 0.95

#: What a default-method row is for the rule (``row_kinds``).
DRIVER, AT_CHANCE, NULL, UNSEEN = "driver", "driver at chance", "null", "no driver in view"


def _null_cohorts(matrix: Matrix) -> list[Scenario]:
    return [s for s in matrix.scenarios if not any(s.planted.values())]


def row_kinds(matrix: Matrix, frame: pd.DataFrame) -> pd.Series:
    """Each row's kind: a counted driver row, a driver row at chance, a null cohort's row,
    or a driver cohort's mode that sees no driver."""
    nulls = {s.name for s in _null_cohorts(matrix)}
    sees = frame["planted"] != "none"
    kinds = pd.Series(UNSEEN, index=frame.index)
    kinds[frame["scenario"].isin(nulls)] = NULL
    kinds[sees & frame["beats_chance"].astype(bool)] = DRIVER
    kinds[sees & ~frame["beats_chance"].astype(bool)] = AT_CHANCE
    return kinds


def site_confounded_nulls(matrix: Matrix) -> set[str]:
    """Null cohorts whose sites differ between MP and controls."""
    return {s.name for s in _null_cohorts(matrix) if s.site_confounding > 0}


def _flag_kept(rows: pd.DataFrame) -> pd.Series:
    """No layer reported, or reported with the site flag."""
    return rows["standout_layer"].isna() | rows["confounded_by_site"].fillna(False).astype(bool)


def judge(matrix: Matrix, frame: pd.DataFrame) -> pd.DataFrame:
    """Per reference matching of the default method: each rule's counted rows, the rows that
    pass it, their share, the target and whether it is met (NA while no row counts)."""
    default = frame[frame["is_default_method"].astype(bool)]
    kinds = row_kinds(matrix, default)
    confounded = default["scenario"].isin(site_confounded_nulls(matrix))
    records = []
    for matching, rows in default.groupby("reference_matching", sort=True):
        kind, site = kinds[rows.index], confounded[rows.index]
        rules = (
            ("recovery", rows[kind == DRIVER]["correct"].astype(bool), RECOVERY_TARGET),
            ("quiet nulls", rows[kind == NULL]["correct"].astype(bool), QUIET_TARGET),
            ("flagged confounding", _flag_kept(rows[site]), 1.0),
        )
        for rule, passing, target in rules:
            share = passing.mean() if len(passing) else float("nan")
            records.append(
                {
                    "reference_matching": matching,
                    "rule": rule,
                    "counted": len(passing),
                    "passing": int(passing.sum()),
                    "share": share,
                    "target": f">= {target:.0%}" if target < 1 else "all",
                    "met": pd.NA if not len(passing) else bool(share >= target),
                }
            )
    return pd.DataFrame.from_records(records)
