"""Subject-level cross-validation, then a final model scored once on held-out test subjects."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np
from torch import nn

from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.data import Item
from layer_platform.classification.metrics import BinaryMetrics, evaluate, youden_threshold
from layer_platform.classification.network import FoldEnsemble
from layer_platform.classification.splits import SubjectSplit, assert_no_subject_leakage
from layer_platform.classification.training import (
    EpochReport,
    TrainedClassifier,
    predict_proba,
    train_classifier,
)
from layer_platform.compute import member_seed

FINAL_STAGE = "final"


@dataclass(frozen=True, eq=False)
class Predictions:
    """MP probabilities per scan, with the ids needed for subject-level statistics."""

    scan_ids: tuple[str, ...]
    subject_ids: tuple[str, ...]
    y_true: np.ndarray
    proba: np.ndarray

    @classmethod
    def of(cls, items: Sequence[Item], proba: np.ndarray) -> Predictions:
        return cls(
            tuple(item.scan_id for item in items),
            tuple(item.subject_id for item in items),
            np.array([item.y for item in items], dtype=np.int64),
            proba,
        )

    @classmethod
    def concat(cls, parts: Sequence[Predictions]) -> Predictions:
        return cls(
            tuple(s for part in parts for s in part.scan_ids),
            tuple(s for part in parts for s in part.subject_ids),
            np.concatenate([part.y_true for part in parts]),
            np.concatenate([part.proba for part in parts]),
        )

    def to_records(self) -> list[dict[str, str | int | float]]:
        return [
            {"scan_id": scan, "subject_id": subject, "y_true": int(y), "proba": float(p)}
            for scan, subject, y, p in zip(
                self.scan_ids, self.subject_ids, self.y_true, self.proba, strict=True
            )
        ]


@dataclass(frozen=True, eq=False)
class FoldResult:
    """One CV fold: its model, that model's out-of-fold predictions and how training went."""

    fold: int
    model: nn.Module
    predictions: Predictions
    best_epoch: int
    best_val_auc: float
    n_train: int


@dataclass(frozen=True, eq=False)
class CVResult:
    """Out-of-fold and test results; ``model`` is the one to register (``final_model``).

    ``refit`` is the model trained on every development subject, when ``final_model`` asks for
    it (then it is ``model``); ``None`` for the fold ensemble.
    """

    folds: tuple[FoldResult, ...]
    oof: Predictions
    oof_metrics: BinaryMetrics
    model: nn.Module
    refit: TrainedClassifier | None
    test: Predictions
    test_metrics: BinaryMetrics

    def to_metrics(self) -> dict[str, float]:
        """Flat metrics for a tracker: ``cv_*``, ``test_*`` and per-fold validation AUC."""
        metrics = {**self.oof_metrics.to_dict("cv_"), **self.test_metrics.to_dict("test_")}
        for fold in self.folds:
            metrics[f"fold_{fold.fold}_val_auc"] = fold.best_val_auc
        return metrics


def _select(items: Sequence[Item], scan_ids: Collection[str]) -> list[Item]:
    return [item for item in items if item.scan_id in scan_ids]


def refit_config(config: ClassifierConfig, fold_best_epochs: Sequence[int]) -> ClassifierConfig:
    """The final model's training: every development subject, for the folds' median best epoch.

    Early stopping needs held-out subjects; with tens of subjects, holding a fifth out of the
    final model both shrinks its training set and picks its epoch on a handful of scans (on a
    simulated cohort: cross-validated AUC 0.96, yet 0.75 on the held-out test for a final model
    stopped on 6 subjects; 0.98 refit). The folds already measured how long training should run.
    """
    epochs = max(1, round(float(np.median(fold_best_epochs))))
    return replace(config, min_epochs=min(config.min_epochs, epochs), max_epochs=epochs)


def train_folds(
    items: Sequence[Item],
    split: SubjectSplit,
    config: ClassifierConfig,
    on_fold: Callable[[FoldResult], None] | None = None,
    on_epoch_end: Callable[[str, EpochReport], None] | None = None,
) -> list[FoldResult]:
    """One model per development fold, trained on the other folds and validated on its own.

    Each fold model trains with its own seed (``member_seed`` of the base seed and the fold
    index). ``on_epoch_end`` receives the stage (``fold_k``) and the epoch's report. The
    data-randomization check (``attribution.data_randomization``) trains its permuted-label
    models through this same loop, so they get the champion's folds and budget.
    """
    unknown = {item.scan_id for item in items} - {row.scan_id for row in split.rows}
    if unknown:
        raise ValueError(f"{len(unknown)} items are not in the split, e.g. {sorted(unknown)[:3]}")
    test_items = _select(items, split.test_ids())
    folds: list[FoldResult] = []
    for fold in range(split.n_folds):
        train = _select(items, split.training_ids(fold))
        val = _select(items, split.validation_ids(fold))
        assert_no_subject_leakage({"train": train, "validation": val, "test": test_items})
        try:
            trained = train_classifier(
                train,
                val,
                replace(config, seed=member_seed(config.seed, fold)),
                _stage_callback(on_epoch_end, f"fold_{fold}"),
            )
        except ValueError as error:  # e.g. an SWE mode left a fold with one class
            raise ValueError(f"fold {fold}: {error}") from error
        result = FoldResult(
            fold,
            trained.model,
            Predictions.of(val, predict_proba(trained.model, val, trained.device)),
            trained.best_epoch,
            trained.best_val_auc,
            len(train),
        )
        folds.append(result)
        if on_fold is not None:
            on_fold(result)
    return folds


def _stage_callback(
    on_epoch_end: Callable[[str, EpochReport], None] | None, stage: str
) -> Callable[[EpochReport], None] | None:
    if on_epoch_end is None:
        return None
    return lambda report: on_epoch_end(stage, report)


def cross_validate(
    items: Sequence[Item],
    split: SubjectSplit,
    config: ClassifierConfig,
    on_fold: Callable[[FoldResult], None] | None = None,
    on_epoch_end: Callable[[str, EpochReport], None] | None = None,
) -> CVResult:
    """The fold models (:func:`train_folds`), then the final model: the folds' ensemble, or a
    model refit on all development subjects for their median best epoch (:func:`refit_config`).

    ``items`` may be a subset of the split's scans (an SWE mode drops scans without SWE), so one
    split serves every mode. The threshold is fixed on out-of-fold predictions before the test
    subjects are scored. ``on_epoch_end`` receives the stage (``fold_k`` or ``final``) and the
    epoch's report.
    """
    folds = train_folds(items, split, config, on_fold, on_epoch_end)
    test_items = _select(items, split.test_ids())

    oof = Predictions.concat([fold.predictions for fold in folds])
    threshold = (
        youden_threshold(oof.y_true, oof.proba)
        if config.threshold_policy == "youden"
        else config.fixed_threshold
    )

    refit = None
    if config.final_model == "refit":
        development = _select(items, split.development_ids())
        assert_no_subject_leakage({"development": development, "test": test_items})
        refit = train_classifier(
            development,
            None,
            refit_config(config, [fold.best_epoch for fold in folds]),
            _stage_callback(on_epoch_end, FINAL_STAGE),
        )
        model, device = refit.model, refit.device
    else:
        model = FoldEnsemble([fold.model for fold in folds]).eval()
        device = next(model.parameters()).device
    test = Predictions.of(test_items, predict_proba(model, test_items, device))

    def score(predictions: Predictions) -> BinaryMetrics:
        return evaluate(
            predictions.y_true,
            predictions.proba,
            predictions.subject_ids,
            threshold,
            config.n_bootstrap,
            config.ci_level,
            config.seed,
        )

    return CVResult(tuple(folds), oof, score(oof), model, refit, test, score(test))
