"""Layers that differ in size between MP and control subjects: the body-size caveat."""

from __future__ import annotations

import numpy as np
import pytest

from layer_platform.statistics import RankingSpec, ranking_rows
from layer_platform.statistics.anatomy import layers_differing_in_size
from layer_platform_tests.saliency.test_ranking import N_BOOT, passing, saliency_frame


def with_body_size(frame, *, thicker: str, by: float, seed: int = 0):
    """MP subjects' ``thicker`` layer takes ``by`` more of the field of view, muscle as much
    less; every share varies between subjects."""
    rng = np.random.default_rng(seed)
    jitter = {s: rng.normal(0, 0.01, 6) for s in frame["subject_id"].unique()}
    layers = list(dict.fromkeys(frame["layer"]))
    share = [
        1 / 6
        + jitter[row.subject_id][layers.index(row.layer)]
        + (row.label == "MP") * by * ((row.layer == thicker) - (row.layer == "muscle"))
        for row in frame.itertuples(index=False)
    ]
    return frame.assign(volume_fraction=share)


def test_a_thicker_layer_and_the_muscle_it_displaces_are_named() -> None:
    frame = with_body_size(
        saliency_frame("deep_fascia", n_subjects=20), thicker="deep_fat", by=0.05
    )
    assert layers_differing_in_size(frame) == ["deep_fat", "muscle"]
    same = with_body_size(saliency_frame("deep_fascia", n_subjects=20), thicker="deep_fat", by=0.0)
    assert layers_differing_in_size(same) == []


@pytest.mark.parametrize("group", ["all", "MP"])
def test_a_finding_in_a_cohort_whose_anatomy_differs_carries_the_caveat(group: str) -> None:
    """Also when the ranking reads MP subjects only: the sizes are compared over both classes."""
    frame = with_body_size(
        saliency_frame("deep_fascia", n_subjects=30), thicker="superficial_fat", by=0.05
    )
    spec = RankingSpec("integrated_gradients", passing(), group)
    ranking = ranking_rows(frame, spec, n_boot=N_BOOT)
    assert (ranking["subgroup"] == group).all()
    assert (ranking["layer_size_differs"] == "superficial_fat, muscle").all()
    standing = ranking[ranking["stands_out"]]
    assert len(standing) == 2, "a caveat, not a gate: the finding stays"
    assert (
        standing["verdict"]
        .str.contains(
            "caveat: MP and control subjects differ in the size of superficial_fat, muscle"
        )
        .all()
    )

    quiet = ranking_rows(
        saliency_frame(None, seed=3), RankingSpec("integrated_gradients", passing()), n_boot=N_BOOT
    )
    assert (
        quiet["layer_size_differs"].isna().all()
        and not quiet["verdict"].str.contains("caveat").any()
    )
