"""Site confounding: a classifier's skill recomputed within sites, on known cohorts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from layer_platform.statistics import RankingSpec, ranking_rows
from layer_platform.statistics.confounding import CONFOUNDED_BY_SITE, within_site_skill
from layer_platform.statistics.skill import permutation_skill
from layer_platform_tests.saliency.test_ranking import N_BOOT, passing, saliency_frame

SITES = ("north", "south", "east")


def cohort(n_subjects: int, *, confounded: bool, seed: int = 0):
    """Two scans per subject. Confounded: MP subjects at "south", controls elsewhere, and the
    classifier reads only the site; otherwise sites are random and it reads the label."""
    rng = np.random.default_rng(seed)
    probability, is_mp, subjects, sites = [], [], [], []
    for subject in range(n_subjects):
        mp = subject % 2 == 0
        if confounded:
            # 80 % of subjects follow the label, so every site still holds both classes
            follows = rng.random() < 0.8
            site = "south" if mp == follows else str(rng.choice(["north", "east"]))
        else:
            site = str(rng.choice(SITES))
        for _ in range(2):
            signal = site == "south" if confounded else mp
            probability.append(float(signal) + rng.normal(0, 0.3))
            is_mp.append(mp)
            subjects.append(f"S{subject:02d}")
            sites.append(site)
    return probability, is_mp, subjects, sites


def test_within_site_auc_counts_only_same_site_pairs():
    probability = [0.9, 0.1, 0.2, 0.8, 0.7, 0.3]
    is_mp = [True, False, True, False, True, False]
    subjects = ["a", "b", "c", "d", "e", "f"]
    sites = ["x", "x", "y", "y", "z", None]
    found = within_site_skill(probability, is_mp, subjects, sites)
    # pairs: (a > b) at x, (c < d) at y; z has one class and f no site
    assert (found.auc, found.n_pairs, found.n_mixed_sites, found.n_sites) == (0.5, 2, 2, 3)


def test_within_site_auc_matches_pairs_counted_by_hand():
    probability, is_mp, subjects, sites = cohort(24, confounded=False, seed=1)
    found = within_site_skill(probability, is_mp, subjects, sites)
    wins = pairs = 0.0
    for i, j in itertools.product(range(len(probability)), repeat=2):
        if is_mp[i] and not is_mp[j] and sites[i] == sites[j]:
            pairs += 1
            wins += (probability[i] > probability[j]) + 0.5 * (probability[i] == probability[j])
    assert found.n_pairs == pairs
    assert found.auc == pytest.approx(wins / pairs)


def test_a_classifier_of_the_label_holds_within_sites():
    found = within_site_skill(*cohort(40, confounded=False))
    assert found.applies and found.holds
    assert 0 < found.p_value < 0.01


def test_a_classifier_of_the_site_beats_chance_but_not_within_sites():
    probability, is_mp, subjects, sites = cohort(40, confounded=True)
    assert permutation_skill(probability, is_mp, subjects).beats_chance
    found = within_site_skill(probability, is_mp, subjects, sites)
    assert found.applies and found.n_pairs > 0 and not found.holds
    assert found.p_value > 0.05


def test_a_label_fully_given_by_the_site_has_no_within_site_pair():
    probability, is_mp, subjects, _ = cohort(20, confounded=False)
    sites = ["south" if mp else "north" for mp in is_mp]
    found = within_site_skill(probability, is_mp, subjects, sites)
    assert (found.n_pairs, found.holds, found.applies) == (0, False, True)
    assert "no site of 2 holds both" in str(found)


def test_one_site_or_none_known_cannot_be_confounded():
    probability, is_mp, subjects, _ = cohort(20, confounded=False)
    assert not within_site_skill(probability, is_mp, subjects, ["north"] * 40).applies
    assert not within_site_skill(probability, is_mp, subjects, [None] * 40).applies


def test_a_site_confounded_classifier_gets_no_finding_and_the_flag():
    """A clear top layer, every other gate passing, but the skill is the site's."""
    probability, is_mp, subjects, sites = cohort(40, confounded=True)
    site = within_site_skill(probability, is_mp, subjects, sites)
    spec = RankingSpec("integrated_gradients", passing(within_site={"bmode": site}))
    ranking = ranking_rows(saliency_frame("deep_fascia"), spec, n_boot=N_BOOT)
    assert not ranking["stands_out"].any()
    assert ranking["confounded_by_site"].all()
    assert ranking["verdict"].str.contains(f"{CONFOUNDED_BY_SITE}: the classifier beats").all()

    held = within_site_skill(*cohort(40, confounded=False))
    spec = RankingSpec("integrated_gradients", passing(within_site={"bmode": held}))
    ranking = ranking_rows(saliency_frame("deep_fascia"), spec, n_boot=N_BOOT)
    assert ranking["stands_out"].sum() == 2 and not ranking["confounded_by_site"].any()
