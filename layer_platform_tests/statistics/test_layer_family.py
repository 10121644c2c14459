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
#: Candidate claims per view: six layers and 15 pairs.
PER_VIEW = 21


def long_table(
    n_subjects: int, *, seed: int = 0, muscle_shift: float | None = None
) -> pd.DataFrame:
    """One scan per subject; dermis ~1 and far above the other layers (~0), but for muscle at
    dermis minus ``muscle_shift`` plus noise when a shift is given (0: as high as dermis)."""
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
    """Ten subjects, dermis above every layer: each pair's exact p is 1/1024, and so is the
    claim. Holm over one claimable method's 21 candidates gives 21/1024; the other method gets
    the p it would have had in the family (42/1024) without changing it."""
    table = long_table(10)
    views = {"a": {WHOLE_LAYER: table}, "b": {WHOLE_LAYER: table}}
    alone = layer_family(views, claimable=("a",))
    assert alone.size == PER_VIEW and alone.n_methods == 1 and alone.claimable == ("a",)
    assert alone.holm_p("a") == pytest.approx(21 / 1024)
    assert alone.holm_p("b") == pytest.approx(42 / 1024)
    both = layer_family(views)
    assert both.size == 2 * PER_VIEW and both.n_methods == 2
    assert both.holm_p("a") == both.holm_p("b") == pytest.approx(42 / 1024)
    finding = both.finding("a")
    assert finding is not None and finding.layers == ("dermis",) and finding.view == WHOLE_LAYER
    for family in (alone, both):  # uncorrected: dermis alone and its five pairs, for each method
        for method in ("a", "b"):
            raw = family.raw[method][WHOLE_LAYER]
            assert len(raw) == 6 and all("dermis" in claim for claim in raw)
            assert raw[("dermis",)] == pytest.approx(1 / 1024)


def test_the_closest_rival_sets_the_claims_p():
    """Muscle close behind dermis: dermis's claim p is its test against muscle. The pair of
    the two beats the other four by far, so it comes first in Holm's order and dermis's claim
    second (20 times its p)."""
    table = long_table(30, muscle_shift=0.04, seed=1)
    family = layer_family({"a": {WHOLE_LAYER: table}})
    closest = top_vs_others(subject_layer_matrix(table), "dermis")["muscle"]
    assert 1e-5 < closest < 0.05 / 20
    assert family.raw["a"][WHOLE_LAYER][("dermis",)] == pytest.approx(closest)
    assert family.holm_p("a") == pytest.approx(20 * closest)
    assert family.finding("a").layers == ("dermis",)


def test_two_layers_neither_above_the_other_are_found_together():
    """Muscle as high as dermis: the top layer's own claim fails, the pair's passes."""
    table = long_table(10, muscle_shift=0.0)
    family = layer_family({"a": {WHOLE_LAYER: table}})
    top = family.tested["a"].top
    assert family.holm_p("a") >= 0.05
    finding = family.finding("a")
    assert finding is not None and finding.layers[0] == top
    assert set(finding.layers) == {"dermis", "muscle"}
    assert finding.holm_p == pytest.approx(21 / 1024)


def test_a_view_without_the_top_layer_adds_no_candidates():
    """A modality view lacking the top layer cannot confirm it: no claim, no correction."""
    table = long_table(10)
    partial = table[table["layer"] != "dermis"]
    family = layer_family({"a": {WHOLE_LAYER: table, "swe": partial}})
    assert family.size == PER_VIEW and family.holm_p("a") == pytest.approx(21 / 1024)
