"""A fold ensemble scored out of fold: each development scan by the member that held it out."""

from __future__ import annotations

import numpy as np
import torch

from layer_platform.classification.metrics import auc
from layer_platform.classification.results import out_of_fold_auc
from layer_platform.classification.training import predict_proba
from layer_platform_tests.classification.oof_fixtures import (
    cohort_items,
    poisoned,
    untrained_ensemble,
)


def test_a_member_is_its_fold_model_with_the_ensembles_weights() -> None:
    ensemble = untrained_ensemble(seed=0)
    x = torch.randn(2, 1, 12, 24, 6)
    with torch.no_grad():
        mean = torch.stack([ensemble.member(k)(x) for k in range(3)]).mean(0)
        assert torch.allclose(mean, ensemble(x), atol=1e-6)
    assert ensemble.member(1).head is ensemble.heads[1]
    state = torch.random.get_rng_state()
    member = ensemble.member(2)
    assert torch.equal(torch.random.get_rng_state(), state), "taking a member draws nothing"
    assert not any(t.is_meta for t in (*member.parameters(), *member.buffers()))


def test_out_of_fold_auc_scores_each_fold_with_its_own_member_and_never_reads_test() -> None:
    split, items = cohort_items()
    ensemble = untrained_ensemble(seed=1)
    expected_y, expected_p = [], []
    for k in range(3):
        fold = [i for i in items if i.scan_id in split.validation_ids(k)]
        expected_y += [i.y for i in fold]
        expected_p.append(predict_proba(ensemble.member(k), fold, torch.device("cpu")))
    expected = auc(expected_y, np.concatenate(expected_p))
    # Test scans that raise when read change nothing: they are never read.
    assert out_of_fold_auc(ensemble, split, poisoned(split, items)) == expected


def test_a_model_without_one_member_per_fold_is_not_rescored() -> None:
    split, items = cohort_items()
    assert out_of_fold_auc(untrained_ensemble(seed=0, n_members=2), split, items) is None
    assert out_of_fold_auc(untrained_ensemble(seed=0).member(0), split, items) is None
