"""What a cross-validated classifier leaves behind: warehouse rows, a Markdown table, checks.

``pain_classifier`` writes these rows for every registered version, so the saliency stage can
tell which scans a champion called right and whether it beats chance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from layer_platform.classification.cross_validation import CVResult
from layer_platform.classification.data import Item
from layer_platform.classification.metrics import auc
from layer_platform.classification.network import FoldEnsemble
from layer_platform.classification.splits import SubjectSplit
from layer_platform.classification.training import predict_proba
from layer_platform.compute import select_device
from layer_platform.timestamps import utc_now


def metric_rows(mode: str, name: str, version: str, cv: CVResult) -> list[dict]:
    """``model_metrics`` rows: out-of-fold (``cv``), held-out (``test``) and per-fold AUC."""
    now = utc_now()
    rows = [{"fold": "cv", "metric": k, "value": v} for k, v in cv.oof_metrics.to_dict().items()]
    rows += [
        {"fold": "test", "metric": k, "value": v} for k, v in cv.test_metrics.to_dict().items()
    ]
    rows.append({"fold": "test", "metric": "heldout_auc", "value": cv.test_metrics.auc})
    rows += [
        {"fold": f"fold_{f.fold}", "metric": "val_auc", "value": f.best_val_auc} for f in cv.folds
    ]
    return [
        {"input_mode": mode, "model_name": name, "model_version": version, "computed_at": now, **r}
        for r in rows
    ]


def prediction_rows(mode: str, name: str, version: str, cv: CVResult) -> list[dict]:
    """``predictions`` rows: each fold's validation scans and the held-out test scans."""
    now = utc_now()
    parts = [(f"fold_{f.fold}", f.predictions) for f in cv.folds] + [("test", cv.test)]
    return [
        {
            "scan_id": scan_id,
            "input_mode": mode,
            "model_name": name,
            "model_version": version,
            "fold_role": role,
            "probability": float(p),
            "computed_at": now,
        }
        for role, predictions in parts
        for scan_id, p in zip(predictions.scan_ids, predictions.proba, strict=True)
    ]


def metrics_markdown(cv: CVResult) -> str:
    """Cross-validation and held-out figures as a Markdown table."""
    lines = [
        "| set | AUC (95% CI) | sensitivity | specificity | Brier | scans | subjects |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in (("cross-validation", cv.oof_metrics), ("held-out test", cv.test_metrics)):
        lines.append(
            f"| {name} | {m.auc:.3f} ({m.auc_ci_low:.3f}–{m.auc_ci_high:.3f}) | {m.sensitivity:.2f}"
            f" | {m.specificity:.2f} | {m.brier:.3f} | {m.n_scans} | {m.n_subjects} |"
        )
    return "\n".join(lines)


def valid_probabilities(values: Sequence[float]) -> bool:
    """Every value finite and in [0, 1]: a model that fails this is never promoted."""
    array = np.asarray(values, dtype=float)
    return bool(np.isfinite(array).all() and ((array >= 0) & (array <= 1)).all())


def out_of_fold_auc(model: nn.Module, split: SubjectSplit, items: Sequence[Item]) -> float | None:
    """A fold ensemble's AUC on ``split``'s development scans, each scored by the member of its
    fold: the one member that never trained on it.

    With the hash split (``classification.splits``) a subject keeps its fold for ever, so an
    older champion's member ``k`` trained only on subjects outside fold ``k`` of today's split:
    champion and challenger are compared on the same scans, neither having trained on any.
    Test scans are never read. None when ``model`` is not an ensemble with one member per fold
    (a refit, or another fold count): it cannot be re-scored out of fold.
    """
    if not isinstance(model, FoldEnsemble) or model.n_members != split.n_folds:
        return None
    device = select_device("auto")
    model = model.to(device).eval()
    y: list[int] = []
    proba: list[np.ndarray] = []
    for fold in range(split.n_folds):
        held_out = split.validation_ids(fold)
        fold_items = [item for item in items if item.scan_id in held_out]
        if fold_items:
            y += [item.y for item in fold_items]
            proba.append(predict_proba(model.member(fold), fold_items, device))
    return auc(y, np.concatenate(proba))
