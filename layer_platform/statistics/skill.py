"""Does a classifier beat chance? A layer is reported as a finding only for one that does.

A network at chance still attributes its output to some layer: the layers differ in brightness
and stiffness, and Integrated Gradients scales with the input, so a chance-level model's saliency
can rank one layer first with a tight CI (on a simulated cohort without any planted driver the
B-mode+SWE model's Integrated Gradients put muscle first, CI 0.101–0.109, Friedman p 4e-23).
That describes the network, not pain. So a mode's verdict requires its classifier to predict
pain: its out-of-fold AUC must beat a subject-level permutation test at 0.05. A bootstrap CI
cannot: with 8 held-out subjects an AUC of 1.0 has the CI 1.0–1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from layer_platform.statistics.gates import ALPHA

#: Permutations of the subjects' labels behind a classifier's skill p-value.
N_PERMUTATIONS = 2000


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney form; ties count one half)."""
    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True)
class SkillTest:
    """Out-of-fold AUC and its subject-level permutation p-value."""

    auc: float
    p_value: float
    n_subjects: int
    n_permutations: int

    @property
    def beats_chance(self) -> bool:
        return self.p_value < ALPHA

    def __str__(self) -> str:
        return (
            f"out-of-fold AUC {self.auc:.2f}, subject-permutation p = {self.p_value:.2g} "
            f"({self.n_permutations} permutations, {self.n_subjects} subjects)"
        )


def permutation_skill(
    probability: Sequence[float],
    label_is_mp: Sequence[bool],
    subject_ids: Sequence,
    *,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
) -> SkillTest:
    """Does a classifier's out-of-fold AUC beat chance? Subject labels are permuted.

    Each subject keeps its scans and their predictions; only which subjects are MP is shuffled,
    so the null keeps the number of MP subjects and the correlation of a subject's scans (a
    draw that leaves one class without scans counts as AUC 0.5).
    ``p = (1 + #{permuted AUC >= observed}) / (1 + n_permutations)`` (never 0). A subject whose
    scans carry different labels is an error: labels belong to subjects.
    """
    frame = pd.DataFrame(
        {"p": np.asarray(probability, float), "mp": np.asarray(label_is_mp, bool)}
    ).assign(subject=np.asarray(subject_ids))
    per_subject = frame.groupby("subject", sort=True)["mp"].agg(["min", "max"])
    if (per_subject["min"] != per_subject["max"]).any():
        raise ValueError("a subject's scans carry different labels")
    subjects = per_subject.index.to_numpy()
    subject_mp = per_subject["max"].to_numpy(bool)
    index = pd.Index(subjects).get_indexer(frame["subject"])
    observed = auc(frame["p"].to_numpy(), subject_mp[index])
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.tile(subject_mp, (n_permutations, 1)), axis=1)[:, index]
    ranks = rankdata(frame["p"].to_numpy())
    n_pos_each = shuffled.sum(axis=1)
    n_neg_each = len(index) - n_pos_each
    with np.errstate(invalid="ignore", divide="ignore"):
        permuted = (shuffled @ ranks - n_pos_each * (n_pos_each + 1) / 2) / (
            n_pos_each * n_neg_each
        )
    hits = int(np.sum(np.nan_to_num(permuted, nan=0.5) >= observed - 1e-12))
    p_value = (1 + hits) / (1 + n_permutations)
    return SkillTest(observed, float(p_value), len(subjects), n_permutations)
