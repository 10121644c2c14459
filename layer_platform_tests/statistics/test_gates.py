"""The verdict gates on constructed inputs with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layer_platform.labels import TISSUE_LAYERS
from layer_platform.statistics.gates import holm, rank1_probability, top_vs_others
from layer_platform.statistics.skill import auc, permutation_skill

KEYS = [layer.key for layer in TISSUE_LAYERS]


def test_auc_by_hand():
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5


def test_permutation_p_matches_the_exact_null():
    """Four subjects (two MP), one scan each, perfectly separated: of the 6 equally likely
    labellings exactly one reaches AUC 1, so p tends to 1/6."""
    test = permutation_skill(
        [0.9, 0.8, 0.2, 0.1], [True, True, False, False], ["a", "b", "c", "d"],
        n_permutations=6000,
    )  # fmt: skip
    assert test.auc == 1.0
    assert test.p_value == pytest.approx(1 / 6, abs=0.02)
    assert not test.beats_chance, "four subjects can never show skill"


def test_permutation_is_by_subject_not_by_scan():
    """Eight subjects with five identical scans each: by scan, AUC 1 would look overwhelming
    (p ~ 1e-11); by subject it is one labelling of 70, p ~ 0.014."""
    subjects = np.repeat(list("abcdefgh"), 5)
    is_mp = np.repeat([True] * 4 + [False] * 4, 5)
    probability = np.repeat(np.linspace(0.9, 0.1, 8), 5)
    test = permutation_skill(probability, is_mp, subjects, n_permutations=4000, seed=1)
    assert test.n_subjects == 8
    assert test.p_value == pytest.approx(1 / 70, abs=0.006)
    assert test.beats_chance


def test_label_permuted_classifier_does_not_beat_chance():
    """Predictions that carry no label information: the skill gate stops the finding."""
    rng = np.random.default_rng(5)
    subjects = np.repeat(np.arange(30), 2)
    is_mp = np.repeat(rng.permutation([True] * 15 + [False] * 15), 2)
    test = permutation_skill(rng.uniform(size=60), is_mp, subjects, n_permutations=1000)
    assert test.p_value > 0.05 and not test.beats_chance


def test_a_subject_with_two_labels_is_an_error():
    with pytest.raises(ValueError, match="different labels"):
        permutation_skill([0.1, 0.2, 0.3], [True, False, True], ["a", "a", "b"])


def test_holm_by_hand():
    """p sorted 0.01, 0.02, 0.03, 0.5 times 4, 3, 2, 1: 0.04, 0.06, 0.06 (monotone), 0.5."""
    adjusted = holm([0.03, 0.01, 0.5, 0.02])
    assert adjusted == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


def _matrix(values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(values, columns=KEYS, index=[f"s{i}" for i in range(len(values))])


def test_top_vs_others_exact_one_sided_p():
    """Eight subjects, the top layer above every other in each: one-sided p = 1 / 2**8."""
    values = np.random.default_rng(0).uniform(0, 1, size=(8, 6))
    values[:, 4] += 2
    found = top_vs_others(_matrix(values), "deep_fascia")
    assert set(found) == set(KEYS) - {"deep_fascia"}
    assert all(p == pytest.approx(1 / 2**8) for p in found.values())


def test_p_rank1_sums_to_one_and_follows_the_lead():
    values = np.random.default_rng(1).normal(1.0, 0.3, size=(20, 6))
    values[:, 1] += 1.0
    values[3, 2] = np.nan
    first = rank1_probability(_matrix(values), n_boot=500)
    assert first.sum() == pytest.approx(1.0)
    assert first["superficial_fat"] > 0.99
    tied = rank1_probability(_matrix(np.random.default_rng(2).normal(size=(20, 6))), n_boot=500)
    assert tied.sum() == pytest.approx(1.0) and tied.max() < 0.7
