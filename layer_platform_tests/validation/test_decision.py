"""The pre-registered decision rule, judged on hand-made ``validation_matrix`` rows, and the
page that shows it."""

from __future__ import annotations

import pandas as pd

from layer_platform.validation import Matrix, Scenario, render
from layer_platform.validation.decision import AT_CHANCE, DRIVER, NULL, UNSEEN, judge, row_kinds
from layer_platform.validation.outcome import COLUMNS

MATRIX = Matrix(
    "m",
    (
        Scenario("drv", 1, bmode_driver="muscle", swe_driver="none"),
        Scenario("null", 2, bmode_driver="none", swe_driver="none"),
        Scenario("null-site", 3, bmode_driver="none", swe_driver="none", site_confounding=0.9),
    ),
)


def rows(*specs: tuple) -> pd.DataFrame:
    """(scenario, mode, planted, beats_chance, standout, flag, correct) per row."""
    columns = ["scenario", "input_mode", "planted", "beats_chance", "standout_layer"]
    frame = pd.DataFrame(specs, columns=[*columns, "confounded_by_site", "correct"])
    frame = frame.assign(
        method="layer_ablation",
        reference_matching="flat",
        is_default_method=True,
        top_layer="muscle",
        verdict="a verdict",
        oof_auc=0.7,
        seconds=60.0,
    )
    return frame.reindex(columns=COLUMNS)


FRAME = rows(
    ("drv", "bmode", "muscle", True, "muscle", False, True),
    ("drv", "bmode_swe", "muscle", True, None, False, False),
    ("drv", "swe", "none", False, "dermis", False, False),  # sees no driver: not decided
    ("drv", "swe", "muscle", False, None, False, False),  # a driver row at chance
    ("null", "bmode", "none", True, None, False, True),
    ("null-site", "bmode", "none", True, None, True, True),  # flagged, nothing reported
    ("null-site", "swe", "none", True, "dermis", False, False),  # a finding, unflagged
)


def test_each_row_is_of_one_kind_and_only_null_cohorts_make_null_rows() -> None:
    assert list(row_kinds(MATRIX, FRAME)) == [DRIVER, DRIVER, UNSEEN, AT_CHANCE, NULL, NULL, NULL]


def test_the_three_rules_count_their_rows_and_judge_them_against_their_targets() -> None:
    found = judge(MATRIX, FRAME).set_index("rule")
    assert found.loc["recovery", ["counted", "passing", "met"]].tolist() == [2, 1, False]
    assert found.loc["quiet nulls", ["counted", "passing"]].tolist() == [3, 2]
    assert not found.loc["quiet nulls", "met"]  # 67 % < 95 %
    assert found.loc["flagged confounding", ["counted", "passing", "met"]].tolist() == [2, 1, False]

    quiet = FRAME.assign(standout_layer=None, correct=True)
    again = judge(MATRIX, quiet).set_index("rule")
    assert again.loc["flagged confounding", "met"] and again.loc["quiet nulls", "met"]
    # the site flag on a reported layer keeps rule 3 (rule 2 still counts the finding)
    flagged = FRAME.assign(confounded_by_site=True)
    assert judge(MATRIX, flagged).set_index("rule").loc["flagged confounding", "met"]


def test_a_rule_no_row_counts_for_is_neither_met_nor_missed() -> None:
    found = judge(MATRIX, FRAME[FRAME["scenario"] == "null"]).set_index("rule")
    assert pd.isna(found.loc["recovery", "met"]) and found.loc["recovery", "counted"] == 0
    assert found.loc["quiet nulls", "met"]


def test_the_page_shows_the_decision_and_keeps_rows_at_chance_apart_from_misses() -> None:
    page = render(MATRIX, FRAME, command="layer-platform validate m.toml", machine="a machine")
    decision = page.index("## Decision")
    assert decision < page.index("## Rates per method")
    assert "| recovery |" in page and "| flagged confounding |" in page
    misses, at_chance = page.split("## Driver rows not counted")
    assert "`drv` swe, flat reference (planted muscle" in at_chance
    assert "`drv` swe, flat reference (planted muscle" not in misses
    assert "`null-site` swe" in misses and "`drv` bmode_swe" in misses
    assert "No result stored yet" not in page

    part = render(MATRIX, FRAME[FRAME["scenario"] != "null"], command="c", machine="m")
    assert "2 of 3 cohorts run" in part
    assert "No result stored yet (not run, or failed): `null`." in part
