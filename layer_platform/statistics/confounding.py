"""Does a classifier's skill hold within sites? If not, its "finding" is the site.

When MP subjects were scanned mostly at one site (or on one device), a classifier can beat
chance by recognising the site's gain, dynamic range or speckle, and its saliency then points at
whichever layer shows the scanner best. The split cannot prevent that (the hash that assigns
roles knows nothing of sites, so each site is split in the same expected proportions as the
cohort), so it is detected: the out-of-fold AUC is recomputed over **within-site pairs only**
(an MP and a control scan from the same site) and tested by permuting subjects' labels **within
their site**, which keeps every site's share of MP subjects. A classifier that beats chance
overall but not within sites reads ``confounded by site``: no layer is reported.

This is a stratified (Mantel-Haenszel-style) AUC: each site contributes its MP x control pairs,
so a site with one class contributes nothing, and a cohort whose label is fully determined by
its site has no within-site pair at all, which is confounding too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from layer_platform.statistics.gates import ALPHA
from layer_platform.statistics.skill import N_PERMUTATIONS

#: The flag a verdict and ``layer_ranking.confounded_by_site`` carry.
CONFOUNDED_BY_SITE = "confounded by site"


@dataclass(frozen=True)
class SiteSkill:
    """The classifier's within-site AUC and its within-site permutation p-value.

    ``auc`` and ``p_value`` are NaN when no site holds both classes. ``n_sites``: sites with a
    known name; ``n_mixed_sites``: those with MP and control subjects (the pairs' sources).
    """

    auc: float
    p_value: float
    n_sites: int
    n_mixed_sites: int
    n_pairs: int
    n_permutations: int

    @property
    def applies(self) -> bool:
        """Only a cohort from two or more known sites can be confounded by site."""
        return self.n_sites >= 2

    @property
    def holds(self) -> bool:
        """The classifier also beats chance within sites (False without any within-site pair)."""
        return self.n_pairs > 0 and self.p_value < ALPHA

    def __str__(self) -> str:
        if self.n_pairs == 0:
            return f"no site of {self.n_sites} holds both MP and control subjects"
        return (
            f"within-site AUC {self.auc:.2f}, within-site permutation p = {self.p_value:.2g} "
            f"({self.n_pairs} MP x control pairs from {self.n_mixed_sites} of {self.n_sites} sites)"
        )


def within_site_skill(
    probability: Sequence[float],
    label_is_mp: Sequence[bool],
    subject_ids: Sequence,
    sites: Sequence[str | None],
    *,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
) -> SiteSkill:
    """Out-of-fold AUC over within-site pairs, and its within-site subject-permutation p.

    A subject belongs to the site where most of its scans were taken (ties: the first name in
    sort order); subjects without a known site are left out. ``p = (1 + #{permuted >=
    observed}) / (1 + n_permutations)``; a permutation without any within-site pair counts as
    AUC 0.5.
    """
    frame = pd.DataFrame(
        {
            "p": np.asarray(probability, float),
            "mp": np.asarray(label_is_mp, bool),
            "subject": np.asarray(subject_ids),
            "site": pd.Series(list(sites), dtype=object),
        }
    ).dropna(subset=["site"])
    frame["site"] = frame["subject"].map(_home_sites(frame))
    per_subject = frame.groupby("subject", sort=True).agg(mp=("mp", "max"), site=("site", "first"))
    rng = np.random.default_rng(seed)
    u_observed = u_permuted = pairs = 0.0
    pairs_permuted = np.zeros(n_permutations)
    mixed = 0
    for site, members in per_subject.groupby("site", sort=True):
        scans = frame[frame["site"] == site]
        index = pd.Index(members.index).get_indexer(scans["subject"])
        ranks = rankdata(scans["p"].to_numpy())
        labels = members["mp"].to_numpy(bool)
        positive = labels[index]
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        if n_pos and n_neg:
            mixed += 1
            pairs += n_pos * n_neg
            u_observed += ranks[positive].sum() - n_pos * (n_pos + 1) / 2
        shuffled = rng.permuted(np.tile(labels, (n_permutations, 1)), axis=1)[:, index]
        n_pos_each = shuffled.sum(axis=1)
        u_permuted = u_permuted + shuffled @ ranks - n_pos_each * (n_pos_each + 1) / 2
        pairs_permuted += n_pos_each * (len(index) - n_pos_each)
    n_sites = int(per_subject["site"].nunique())
    if not pairs:
        return SiteSkill(float("nan"), float("nan"), n_sites, 0, 0, n_permutations)
    observed = u_observed / pairs
    with np.errstate(invalid="ignore", divide="ignore"):
        permuted = np.where(pairs_permuted > 0, u_permuted / pairs_permuted, 0.5)
    hits = int(np.sum(permuted >= observed - 1e-12))
    p_value = (1 + hits) / (1 + n_permutations)
    return SiteSkill(observed, float(p_value), n_sites, mixed, int(pairs), n_permutations)


def _home_sites(frame: pd.DataFrame) -> pd.Series:
    """Each subject's site: where most of its scans were taken (ties: first in sort order)."""
    counts = frame.groupby(["subject", "site"]).size().reset_index(name="n")
    counts = counts.sort_values(["subject", "n", "site"], ascending=[True, False, True])
    return counts.drop_duplicates("subject").set_index("subject")["site"]
