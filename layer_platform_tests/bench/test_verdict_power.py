"""The verdict-power study: its truth of a claim, its simulated cohorts and its page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench import verdict_power as study
from bench.stored_cohorts import cohort_homes
from layer_platform.statistics.verdicts import WHOLE_LAYER


def _cell(name: str, means: tuple[float, ...], n: int = 20) -> study.Cell:
    return study.Cell(name, (means,), "normal", n)


def test_two_layers_tied_on_top_make_either_alone_a_false_claim_and_both_a_true_one() -> None:
    cell = _cell("two tied on top", study._null_means("two tied on top"))
    first, second = study.LAYERS[:2]
    assert study._outcome(cell, (WHOLE_LAYER, (first,)))
    assert not study._outcome(cell, (WHOLE_LAYER, tuple(sorted((first, second)))))
    assert not study._outcome(cell, ("", ()))


def test_a_driver_cell_counts_only_the_planted_layer_in_a_view_where_it_is_true() -> None:
    cell = study.Cell(
        "driver d=1",
        (study._driver_means(1.0), study._null_means("no driver")),
        "normal",
        20,
    )
    assert study._outcome(cell, (WHOLE_LAYER, (study.PLANTED,)))
    assert not study._outcome(cell, ("channel1", (study.PLANTED,)))
    assert not study._outcome(cell, (WHOLE_LAYER, (study.RUNNER_UP,)))


@pytest.mark.parametrize("noise", ["normal", "t3", "unequal"])
def test_simulated_paired_differences_have_the_set_mean(noise: str) -> None:
    cell = study.Cell("driver d=1", (study._driver_means(1.0),), noise, 4000)
    table = study.simulate(cell, np.random.default_rng(0))[WHOLE_LAYER]
    matrix = table.pivot(index="subject_id", columns="layer", values="value")
    difference = matrix[study.PLANTED] - matrix[study.RUNNER_UP]
    assert difference.mean() == pytest.approx(1.0, abs=0.1)
    if noise == "normal":
        assert difference.std() == pytest.approx(1.0, abs=0.05)


def test_every_rule_finds_a_strong_driver_and_the_page_shows_each_section(tmp_path) -> None:
    strong = _cell("driver d=3", study._driver_means(3.0))
    rows = study.measure([strong], null_reps=1, power_reps=4, workers=1)
    assert set(rows["rule"]) == set(study.RULES)
    assert (rows["share"] == 1.0).all()

    out = tmp_path / "page.md"
    study.main(
        [
            "--subjects",
            "12",
            "--effects",
            "2",
            "--null-reps",
            "2",
            "--power-reps",
            "2",
            "--out",
            str(out),
        ]
    )
    page = out.read_text()
    for section in ("Worst false-claim rate", "Power", "Every null cell", "**Produced by**"):
        assert section in page


def test_a_stored_finding_is_quiet_planted_or_another_layer() -> None:
    assert study._stored_outcome(None, ["deep_fat"]) == "quiet"
    assert study._stored_outcome(("", ()), ["deep_fat"]) == "quiet"
    assert study._stored_outcome(("bmode", ("deep_fat",)), ["deep_fat"]) == "planted"
    two = ("", ("deep_fascia", "superficial_fascia"))
    assert study._stored_outcome(two, ["deep_fascia", "superficial_fascia"]) == "planted"
    assert study._stored_outcome(two, ["deep_fascia"]) == "other layer"
    assert study._stored_outcome(("", ("muscle",)), []) == "other layer"


def test_the_stored_section_counts_outcomes_and_lists_rows_where_rules_differ() -> None:
    rows = []
    for cohort, holm, other in [("a", "-", "muscle"), ("b", "dermis", "dermis")]:
        row = {"cohort": cohort, "mode": "swe", "planted": "dermis"}
        for rule in study.RULES:
            claim = holm if rule == study.RULES[0] else other
            row[rule] = claim
            outcome = (
                "quiet" if claim == "-" else ("planted" if claim == "dermis" else "other layer")
            )
            row[f"{rule}: outcome"] = outcome
        rows.append(row)
    text = "\n".join(study._stored_section(pd.DataFrame(rows)))
    assert "2 cohorts" in text
    assert "| quiet | 1 | 0 | 0 | 0 |" in text
    assert "| other layer | 0 | 1 | 1 | 1 |" in text
    assert "| a | swe | dermis | - | muscle | muscle | muscle |" in text
    assert "| b | swe |" not in text


def test_cohort_homes_are_the_folders_with_a_ground_truth(tmp_path) -> None:
    for name in ("b-cohort", "a-cohort", "not-a-cohort"):
        (tmp_path / name).mkdir()
    for name in ("b-cohort", "a-cohort"):
        (tmp_path / name / "ground_truth.json").write_text("{}")
    (tmp_path / "validation.duckdb").write_text("")
    assert [h.name for h in cohort_homes([tmp_path])] == ["a-cohort", "b-cohort"]
