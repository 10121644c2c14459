"""Gate 4's family on constructed score tables with exact p-values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layer_platform.labels import TISSUE_LAYERS
from layer_platform.statistics.gates import top_vs_others
from layer_platform.statistics.summary import subject_layer_matrix
from layer_platform.statistics.verdicts import WHOLE_LAYER, layer_family

KEYS = [layer.key for layer in TISSUE_LAYERS]


def long_table(
    n_subjects: int, *, seed: int = 0, muscle_shift: float | None = None
) -> pd.DataFrame:
    """One scan per subject; dermis ~1 and far above the other layers (~0), but for muscle at
    dermis minus ``muscle_shift`` plus noise when a shift is given (a close second)."""
    rng = np.random.default_rng(seed)
    records = []
    for subject in range(n_subjects):
        dermis = 1.0 + rng.normal(0.0, 0.01)
        values = {key: rng.normal(0.0, 0.01) for key in KEYS}
        values["dermis"] = dermis
        if muscle_shift is not None:
            values["muscle"] = dermis - muscle_shift + rng.normal(0.0, 0.05)
        records += [
            {"scan_id": f"S{subject}", "subject_id": f"S{subject}", "layer": k, "value": v}
            for k, v in values.items()
        ]
    return pd.DataFrame.from_records(records)


def test_a_claim_is_its_largest_pair_and_holm_runs_over_claimable_candidates():
    """Eight subjects, dermis above every layer: each pair's exact p is 1/256, and so is the
    claim. Six candidates per method: Holm gives 6/256 for the one claimable method; the other
    method gets the p it would have had in the family (12/256) without changing it."""
    table = long_table(8)
    views = {"a": {WHOLE_LAYER: table}, "b": {WHOLE_LAYER: table}}
    alone = layer_family(views, claimable=("a",))
    assert alone.size == 6 and alone.n_methods == 1 and alone.claimable == ("a",)
    assert alone.holm_p("a") == pytest.approx(6 / 256)
    assert alone.holm_p("b") == pytest.approx(12 / 256)
    both = layer_family(views)
    assert both.size == 12 and both.n_methods == 2
    assert both.holm_p("a") == both.holm_p("b") == pytest.approx(12 / 256)
    assert both.standout("a") == "dermis"


def test_the_closest_rival_sets_the_claims_p():
    """Muscle close behind dermis: the claim's p is dermis-vs-muscle's, times the six
    candidates (the smallest candidate in Holm's order)."""
    table = long_table(30, muscle_shift=0.03, seed=1)
    family = layer_family({"a": {WHOLE_LAYER: table}})
    closest = top_vs_others(subject_layer_matrix(table), "dermis")["muscle"]
    assert 1e-4 < closest < 0.05 / 6
    assert family.holm_p("a") == pytest.approx(6 * closest)
    assert family.view("a") == WHOLE_LAYER and family.standout("a") == "dermis"


def test_a_view_without_the_top_layer_adds_no_candidates():
    """A modality view lacking the top layer cannot confirm it: no claim, no correction."""
    table = long_table(8)
    partial = table[table["layer"] != "dermis"]
    family = layer_family({"a": {WHOLE_LAYER: table, "swe": partial}})
    assert family.size == 6 and family.holm_p("a") == pytest.approx(6 / 256)
