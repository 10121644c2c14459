from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pytest
import torch

from layer_platform.classification.data import Item
from layer_platform.classification.inference import inference_network
from layer_platform.classification.metrics import auc
from layer_platform.classification.modes import make_items
from layer_platform.classification.training import (
    EpochReport,
    TrainedClassifier,
    predict_proba,
    stack_items,
    train_classifier,
)
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
def cohort() -> tuple[list[Item], list[Item]]:
    items = make_items(synthetic_scans(n_subjects=12), "bmode")
    train = [item for item in items if int(item.subject_id[3:]) < 8]
    val = [item for item in items if int(item.subject_id[3:]) >= 8]
    return train, val


@pytest.fixture(scope="module")
def trained(cohort) -> tuple[TrainedClassifier, list[EpochReport]]:
    reports: list[EpochReport] = []
    return train_classifier(*cohort, TINY_CONFIG, on_epoch_end=reports.append), reports


def test_a_few_epochs_learn_the_bright_slab(cohort, trained) -> None:
    train, _ = cohort
    model = trained[0]
    proba = predict_proba(model.model, train, model.device)
    assert auc([item.y for item in train], proba) >= 0.9


def test_predict_proba_gives_finite_probabilities_in_item_order(cohort, trained) -> None:
    train, val = cohort
    model = trained[0]
    proba = predict_proba(model.model, val + train, model.device)
    assert proba.shape == (len(val) + len(train),)
    assert proba.dtype == np.float64
    assert np.all(np.isfinite(proba)) and np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba[: len(val)], predict_proba(model.model, val, model.device))


def test_predictions_come_from_the_network_attribution_explains(cohort, trained) -> None:
    """Reported probabilities (and each epoch's validation) run through ``inference_network``,
    the folded network the attribution methods explain, not the trained one: same function up
    to rounding, and the one the maps are of."""
    _, val = cohort
    model = trained[0]
    x, _ = stack_items(val)
    with torch.no_grad():
        expected = torch.sigmoid(inference_network(model.model)(x).reshape(-1)).double().numpy()
    np.testing.assert_array_equal(predict_proba(model.model, val, model.device), expected)


def test_best_epoch_weights_are_kept_and_every_epoch_is_reported(cohort, trained) -> None:
    _, val = cohort
    model, reports = trained
    assert reports == list(model.history)
    assert TINY_CONFIG.min_epochs <= len(reports) <= TINY_CONFIG.max_epochs
    assert [r.epoch for r in reports] == list(range(1, len(reports) + 1))
    assert model.best_val_auc == max(r.val_auc for r in reports)
    assert reports[model.best_epoch - 1].improved
    # Warm-up epochs are never kept (near-constant early outputs rank tiny sets by noise).
    assert model.best_epoch >= TINY_CONFIG.min_epochs
    assert not any(r.improved for r in reports[: TINY_CONFIG.min_epochs - 1])
    # The returned weights are the best epoch's, not the last one's.
    val_proba = predict_proba(model.model, val, model.device)
    assert auc([item.y for item in val], val_proba) == pytest.approx(model.best_val_auc)
    assert all(np.isfinite(list(r.to_metrics().values())).all() for r in reports)


def test_early_stopping_stops_after_patience_without_improvement(cohort) -> None:
    config = dataclasses.replace(TINY_CONFIG, min_epochs=1, max_epochs=30, patience=2)
    model = train_classifier(*cohort, config)
    last_improvement = max(r.epoch for r in model.history if r.improved)
    assert len(model.history) == min(last_improvement + config.patience, config.max_epochs)


def test_training_is_reproducible_from_the_seed(cohort, trained) -> None:
    train, val = cohort
    again = train_classifier(train, val, TINY_CONFIG)
    first = trained[0]
    assert again.best_epoch == first.best_epoch
    np.testing.assert_allclose(
        predict_proba(again.model, val, again.device),
        predict_proba(first.model, val, first.device),
        rtol=1e-6,
    )


def test_one_class_validation_early_stops_on_loss(cohort) -> None:
    """A small SWE fold may hold MP scans only: training goes on, judged by validation loss."""
    train, val = cohort
    trained = train_classifier(train, [item for item in val if item.y == 1], TINY_CONFIG)
    assert math.isnan(trained.best_val_auc)
    assert all(math.isnan(report.val_auc) for report in trained.history)
    best = min(trained.history[TINY_CONFIG.min_epochs - 1 :], key=lambda r: r.val_loss)
    assert trained.best_epoch == best.epoch


def test_without_validation_it_trains_exactly_max_epochs_and_keeps_the_last(cohort) -> None:
    train, val = cohort
    refit = train_classifier(train, None, TINY_CONFIG)
    epochs = TINY_CONFIG.max_epochs
    assert [r.epoch for r in refit.history] == list(range(1, epochs + 1))
    assert refit.best_epoch == epochs and math.isnan(refit.best_val_auc)
    assert all(math.isnan(r.val_auc) and math.isnan(r.val_loss) for r in refit.history)
    assert set(refit.history[-1].to_metrics()) == {"train_loss", "epoch_seconds", "lr"}
    proba = predict_proba(refit.model, val, refit.device)
    assert auc([item.y for item in val], proba) >= 0.75  # it learned the slab


def test_mismatched_shapes_are_rejected(cohort) -> None:
    train, val = cohort
    other_grid = [dataclasses.replace(item, x=item.x[:, :-1]) for item in val]
    with pytest.raises(ValueError, match="differ"):
        train_classifier(train, other_grid, TINY_CONFIG)


def test_one_cycle_warms_up_to_the_peak_lr_then_anneals_and_still_learns(cohort) -> None:
    train, val = cohort
    config = dataclasses.replace(
        TINY_CONFIG, lr_schedule="one_cycle", min_epochs=1, max_epochs=8, patience=8
    )
    trained = train_classifier(train, val, config)
    lrs = [report.lr for report in trained.history]
    assert len(lrs) == config.max_epochs  # patience >= max_epochs: the whole cycle runs
    peak = lrs.index(max(lrs))
    assert 0 < peak < len(lrs) - 1 and max(lrs) <= config.lr
    assert lrs[-1] < 0.01 * config.lr  # annealed
    assert all(a <= b for a, b in pairwise(lrs[: peak + 1]))
    assert all(a >= b for a, b in pairwise(lrs[peak:]))
    proba = predict_proba(trained.model, val, trained.device)
    assert auc([item.y for item in val], proba) >= 0.75


def test_the_constant_schedule_keeps_its_lr(cohort) -> None:
    config = dataclasses.replace(TINY_CONFIG, lr_schedule="constant", min_epochs=1, max_epochs=3)
    trained = train_classifier(*cohort, config)
    assert {report.lr for report in trained.history} == {config.lr}
