"""How a classifier champion is scored against a challenger, without the test subjects.

The challenger's score is its out-of-fold AUC over the development folds. The champion is
re-scored on the same folds, each development scan by the member that held its fold out
(``classification.results.out_of_fold_auc``): valid because the hash split never moves a
subject, so no member ever trained on a scan of its own fold, old or newly arrived. A champion
that cannot be re-scored so (a refit, or one trained under another split scheme) is scored by
the out-of-fold AUC recorded when it was trained: its own development scans, not the same ones,
but still never a test subject. The test set is scored once per version, for reporting only.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlflow.entities.model_registry import ModelVersion
from torch import nn

from layer_platform.classification.data import Item
from layer_platform.classification.results import out_of_fold_auc
from layer_platform.classification.splits import SubjectSplit
from layer_platform.tracking.mlflow_registry import Tracking, recorded_metric
from layer_platform.tracking.promotion import PromotionDecision, challenge_champion, should_promote

#: On a classifier version: the split scheme it was trained under (``SubjectSplit.scheme``).
SPLIT_TAG = "layer.split"
#: The out-of-fold AUC a version's run logged (``CVResult.to_metrics``).
OOF_AUC_METRIC = "cv_auc"
RESCORED = "re-scored out of fold on the challenger's development folds"
RECORDED = "its recorded out-of-fold AUC (not re-scorable on these folds)"


def champion_oof_auc(
    tracking: Tracking,
    version: ModelVersion,
    model: nn.Module,
    split: SubjectSplit,
    items: Sequence[Item],
) -> tuple[float, str]:
    """The champion's out-of-fold AUC and how it was obtained (``RESCORED`` or ``RECORDED``).

    Reads only ``split``'s development scans of ``items``; raises ``LookupError`` when neither
    score exists (a version from before out-of-fold metrics were logged).
    """
    if version.tags.get(SPLIT_TAG) == split.scheme():
        score = out_of_fold_auc(model, split, items)
        if score is not None:
            return score, RESCORED
    recorded = recorded_metric(tracking, version, OOF_AUC_METRIC)
    if recorded is None:
        raise LookupError(
            f"{version.name} v{version.version}: no out-of-fold AUC to compare a challenger with"
        )
    return float(recorded), RECORDED


def challenge_on_oof(
    tracking: Tracking,
    name: str,
    version: str,
    candidate_oof_auc: float,
    split: SubjectSplit,
    development: Sequence[Item],
    *,
    min_auc: float,
) -> PromotionDecision:
    """Challenge ``name``'s champion with a version's out-of-fold AUC; the recorded reason says
    how the champion was scored. ``development`` holds the split's development items only."""
    bases: list[str] = []

    def score(model: nn.Module, current: ModelVersion) -> float:
        value, basis = champion_oof_auc(tracking, current, model, split, development)
        bases.append(basis)
        return value

    def decide(candidate: float, current: float | None) -> PromotionDecision:
        decision = should_promote(candidate, current, min_auc=min_auc, metric="out-of-fold AUC")
        suffix = "".join(f" (champion: {basis})" for basis in bases)
        return PromotionDecision(decision.promote, decision.reason + suffix)

    return challenge_champion(tracking, name, version, candidate_oof_auc, score, decide)
