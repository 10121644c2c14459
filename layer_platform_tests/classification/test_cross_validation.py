from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch

from layer_platform.classification.cross_validation import (
    FoldResult,
    cross_validate,
    refit_config,
)
from layer_platform.classification.data import Item, Scan
from layer_platform.classification.modes import eligible_scans, make_items
from layer_platform.classification.network import FoldEnsemble
from layer_platform.classification.splits import make_subject_split
from layer_platform_tests.classification.synthetic import (
    TINY_CONFIG,
    one_torch_thread,
    synthetic_scans,
)


@pytest.fixture(scope="module", autouse=True)
def _single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def scans():
    return synthetic_scans(n_subjects=16)


@pytest.fixture(scope="module")
def split(scans):
    # A salt whose hash split holds 2 test subjects per class: the fewest a subject bootstrap
    # CI accepts.
    return make_subject_split(scans, n_folds=3, test_fraction=0.25, seed=25)


def test_the_default_final_model_is_the_folds_mean_logit(scans, split) -> None:
    epochs: dict[str, int] = {}
    result = cross_validate(
        make_items(scans, "bmode"),
        split,
        TINY_CONFIG,
        on_epoch_end=lambda stage, report: epochs.__setitem__(stage, report.epoch),
    )
    assert set(epochs) == {"fold_0", "fold_1", "fold_2"}  # no model beyond the folds
    assert result.refit is None and isinstance(result.model, FoldEnsemble)
    x = torch.from_numpy(np.stack([item.x for item in make_items(scans[:4], "bmode")]))
    with torch.no_grad():
        members = torch.stack([fold.model(x) for fold in result.folds])
        torch.testing.assert_close(result.model(x), members.mean(0))
    assert result.test_metrics.auc >= 0.75


def test_the_refit_final_model_trains_the_folds_median_best_epoch(scans, split) -> None:
    folds: list[FoldResult] = []
    epochs: dict[str, int] = {}
    result = cross_validate(
        make_items(scans, "bmode"),
        split,
        replace(TINY_CONFIG, final_model="refit"),
        on_fold=folds.append,
        on_epoch_end=lambda stage, report: epochs.__setitem__(stage, report.epoch),
    )
    assert [f.fold for f in folds] == [0, 1, 2] == [f.fold for f in result.folds]
    assert set(epochs) == {"fold_0", "fold_1", "fold_2", "final"}
    # The final model is refit on every development subject, for the folds' median best epoch.
    median = sorted(f.best_epoch for f in result.folds)[1]
    assert result.refit is not None and result.model is result.refit.model
    assert epochs["final"] == result.refit.best_epoch == median
    assert len(result.refit.history) == median
    assert sorted(result.oof.scan_ids) == sorted(split.development_ids())
    for fold in result.folds:
        assert set(fold.predictions.scan_ids) == split.validation_ids(fold.fold)
    assert set(result.test.scan_ids) == split.test_ids()
    # The slab is easy: the folds rank their own validation subjects better than chance (the
    # median fold well: four validation subjects make one fold's AUC coarse, and an 8-epoch
    # one-cycle run can stop a fold early), and the final model separates the unseen test
    # subjects. (Pooled out-of-fold AUC mixes differently calibrated fold models, so it is only
    # required to beat chance.)
    fold_aucs = sorted(fold.best_val_auc for fold in result.folds)
    assert fold_aucs[0] > 0.5 and fold_aucs[1] >= 0.75
    assert result.oof_metrics.auc > 0.5
    assert result.test_metrics.auc >= 0.75
    # The threshold is chosen on out-of-fold predictions and reused unchanged on test.
    assert result.test_metrics.threshold == result.oof_metrics.threshold
    assert 0 <= result.test_metrics.threshold <= 1
    metrics = result.to_metrics()
    assert {"cv_auc", "test_auc", "test_auc_ci_low", "test_brier", "fold_2_val_auc"} <= set(metrics)
    assert all(isinstance(value, float | int) for value in metrics.values())


def test_swe_modes_run_on_the_eligible_subset_of_the_same_split(scans, split) -> None:
    # Drop SWE from one development scan; the split (made on all scans) is reused as is.
    dropped = sorted(split.development_ids())[0]
    with_gap = [
        Scan(s.scan_id, s.subject_id, s.label, s.bmode) if s.scan_id == dropped else s
        for s in scans
    ]
    eligible, excluded = eligible_scans(with_gap, "bmode_swe")
    assert excluded == 1
    result = cross_validate(make_items(eligible, "bmode_swe"), split, TINY_CONFIG)
    assert dropped not in result.oof.scan_ids
    assert len(result.oof.scan_ids) == len(split.development_ids()) - 1


def test_items_outside_the_split_are_rejected(scans, split) -> None:
    other = make_items(synthetic_scans(n_subjects=2, seed=1), "bmode")
    renamed = [Item(f"new_{i.scan_id}", i.subject_id, i.label, i.x) for i in other]
    with pytest.raises(ValueError, match="not in the split"):
        cross_validate(renamed, split, TINY_CONFIG)


def test_refit_runs_the_folds_median_best_epoch() -> None:
    refit = refit_config(TINY_CONFIG, [4, 9, 6])
    assert refit.max_epochs == 6 and refit.min_epochs <= 6
    assert refit_config(TINY_CONFIG, [1, 1, 2]).max_epochs == 1
