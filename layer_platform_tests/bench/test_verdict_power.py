"""The verdict-power study: its truth of a claim, its simulated cohorts and its page."""

from __future__ import annotations

import numpy as np
import pytest

from bench import verdict_power as study
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
