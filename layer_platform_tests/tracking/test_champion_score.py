"""Classifier champions are chosen on out-of-fold AUC: the test subjects never choose one."""

from __future__ import annotations

import mlflow
import numpy as np

from layer_platform.classification.results import out_of_fold_auc
from layer_platform.tracking.champion_score import (
    RECORDED,
    RESCORED,
    SPLIT_TAG,
    challenge_on_oof,
)
from layer_platform.tracking.mlflow_registry import Tracking, champion, log_torch_model, tracked_run
from layer_platform_tests.classification.oof_fixtures import (
    cohort_items,
    poisoned,
    untrained_ensemble,
)


def register(tracking: Tracking, name: str, seed: int, scheme: str, cv_auc: float) -> str:
    with tracked_run(tracking, "champion-score-test", f"seed{seed}"):
        mlflow.log_metric("cv_auc", cv_auc)
        model = untrained_ensemble(seed)
        example = np.zeros((1, 1, 12, 24, 6), "f4")
        return log_torch_model(model, example, name, tags={SPLIT_TAG: scheme}).version


def test_promotion_rescores_the_champion_out_of_fold_and_never_reads_test_scans(
    shared_tracking: Tracking, model_name: str
) -> None:
    split, items = cohort_items()
    first = register(shared_tracking, model_name, 1, split.scheme(), cv_auc=0.7)
    # Every test scan raises when read: promotion still decides, so it never read one.
    development = poisoned(split, items)
    decision = challenge_on_oof(
        shared_tracking, model_name, first, 0.7, split, development, min_auc=0.5
    )
    assert decision.promote and champion(shared_tracking, model_name).version == first
    champion_score = out_of_fold_auc(untrained_ensemble(1), split, items)
    second = register(shared_tracking, model_name, 2, split.scheme(), cv_auc=0.0)
    decision = challenge_on_oof(
        shared_tracking, model_name, second, champion_score, split, development, min_auc=-1.0
    )
    # A tie with the champion's out-of-fold AUC on the same folds keeps the champion.
    assert not decision.promote and RESCORED in decision.reason
    assert f"{champion_score:.3f}" in decision.reason
    assert champion(shared_tracking, model_name).version == first


def test_a_champion_split_otherwise_is_scored_by_its_recorded_oof_auc(
    shared_tracking: Tracking, model_name: str
) -> None:
    split, items = cohort_items()
    first = register(shared_tracking, model_name, 1, "another split", cv_auc=0.9)
    challenge_on_oof(shared_tracking, model_name, first, 0.9, split, items, min_auc=0.5)
    second = register(shared_tracking, model_name, 2, split.scheme(), cv_auc=0.95)
    decision = challenge_on_oof(
        shared_tracking, model_name, second, 0.95, split, poisoned(split, items), min_auc=0.5
    )
    assert decision.promote and RECORDED in decision.reason and "0.900" in decision.reason
