"""The data-randomization check's parts: the subject-level permutation, the permuted-label
fold models explained out of fold, and its verdict (gate 4 on the permuted model's rows)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from layer_platform.attribution import AttributionConfig
from layer_platform.attribution.data_randomization import (
    ScanToExplain,
    explain_out_of_fold,
    judge,
    permute_subject_labels,
    train_permuted,
)
from layer_platform.classification.data import Item
from layer_platform.classification.modes import make_items
from layer_platform.classification.splits import SplitScheme
from layer_platform_tests.classification.synthetic import (
    TINY_CONFIG,
    TINY_SHAPE,
    one_torch_thread,
    synthetic_scans,
)
from layer_platform_tests.saliency.test_ranking import saliency_frame

SCHEME = SplitScheme(n_folds=3, test_fraction=0.2, seed=1)


def _items(n_subjects: int, scans_per_subject: int = 2) -> list[Item]:
    """Development items only (``SCHEME``), half the subjects MP; inputs do not matter here."""
    x = np.zeros((1, 2, 2, 2), np.float32)
    return [
        Item(f"s{s:02d}-{k}", f"s{s:02d}", "MP" if s % 2 else "control", x)
        for s in range(n_subjects)
        for k in range(scans_per_subject)
        if SCHEME.assign(f"s{s:02d}") is not None
    ]


def _subject_labels(items: list[Item]) -> dict[str, str]:
    found: dict[str, set[str]] = {}
    for item in items:
        found.setdefault(item.subject_id, set()).add(item.label)
    assert all(len(labels) == 1 for labels in found.values()), "a subject's scans split up"
    return {subject: labels.pop() for subject, labels in found.items()}


def _fold_counts(labels: dict[str, str]) -> Counter:
    return Counter((SCHEME.assign(subject), label) for subject, label in labels.items())


def test_permutation_moves_subjects_not_scans_and_keeps_every_folds_class_counts():
    items = _items(30, scans_per_subject=3)
    before = _subject_labels(items)
    permuted = permute_subject_labels(items, SCHEME.assign, seed=4)
    after = _subject_labels(permuted)
    assert [i.scan_id for i in permuted] == [i.scan_id for i in items]
    assert [i.x is j.x for i, j in zip(items, permuted, strict=True)] == [True] * len(items)
    assert _fold_counts(after) == _fold_counts(before), "each fold keeps its MP/control counts"
    moved = sum(before[s] != after[s] for s in before)
    assert moved >= 4, f"only {moved} of {len(before)} subjects changed label"
    # seeded: the same seed gives the same labels, another seed other labels
    assert _subject_labels(permute_subject_labels(items, SCHEME.assign, seed=4)) == after
    assert _subject_labels(permute_subject_labels(items, SCHEME.assign, seed=5)) != after


def test_permutation_never_returns_the_champions_own_labels():
    """Two subjects per fold (one of each class): half of all draws are the identity."""
    x = np.zeros((1, 2, 2, 2), np.float32)
    items = [Item(f"{s}-0", s, label, x) for s, label in (("a", "MP"), ("b", "control"))]
    for seed in range(20):
        permuted = permute_subject_labels(items, lambda subject: 0, seed)
        assert [i.label for i in permuted] == ["control", "MP"], seed


def test_permutation_refuses_test_subjects_and_folds_that_cannot_move():
    x = np.zeros((1, 2, 2, 2), np.float32)
    items = [Item("a-0", "a", "MP", x), Item("b-0", "b", "control", x)]
    with pytest.raises(ValueError, match="test subject"):
        permute_subject_labels(items, lambda subject: None, seed=0)
    with pytest.raises(ValueError, match="no fold holds both classes"):
        permute_subject_labels(items, {"a": 0, "b": 1}.get, seed=0)


def test_a_layer_that_stands_out_fails_the_check_and_exchangeable_layers_pass():
    """Gate 4 on permuted-label rows, over the methods checked together."""
    methods = ("integrated_gradients", "layer_ablation")
    failing = judge(saliency_frame("deep_fascia", methods=methods), methods)
    assert set(failing) == set(methods)
    for verdict in failing.values():
        assert not verdict.passed and verdict.standout_layer == "deep_fascia"
        assert verdict.holm_p < 0.05 and verdict.n_tests == 42 and verdict.n_subjects == 16
    passing = judge(saliency_frame(None, methods=methods), methods)
    assert set(passing) == set(methods)
    for verdict in passing.values():
        assert verdict.passed and verdict.standout_layer is None and verdict.holm_p >= 0.05
    # a method outside the checked family is neither judged nor counted in Holm's family
    alone = judge(saliency_frame("deep_fascia", methods=methods), ["layer_ablation"])
    assert set(alone) == {"layer_ablation"} and alone["layer_ablation"].n_tests == 21
    # two subjects or fewer with all six layers: no test, so no result (not run)
    assert judge(saliency_frame("deep_fascia", n_subjects=1), methods) == {}


def test_permuted_fold_models_explain_each_development_scan_out_of_fold():
    scheme = SplitScheme(n_folds=2, test_fraction=0.2, seed=0)
    items = make_items(synthetic_scans(n_subjects=12), "bmode")
    depth = np.repeat(np.arange(1, 7), TINY_SHAPE[1] // 6)
    labels = np.broadcast_to(depth[None, :, None], TINY_SHAPE).copy()
    with one_torch_thread():
        model, _ = train_permuted(items, scheme, TINY_CONFIG, seed=0)
        scans = [ScanToExplain(item, labels, AttributionConfig()) for item in items]
        rows = explain_out_of_fold(model, scheme, scans, ["saliency", "layer_ablation"])
    assert model.n_members == scheme.n_folds
    development = {i.scan_id for i in items if scheme.assign(i.subject_id) is not None}
    assert 0 < len(development) < len(items), "the cohort has test subjects to leave out"
    assert set(rows["scan_id"]) == development
    assert (rows.groupby(["scan_id", "method"]).size() == 6).all()
    assert rows.loc[rows["method"] == "layer_ablation", "ablation_delta"].notna().all()
    assert set(judge(rows, ["saliency", "layer_ablation"])) == {"saliency", "layer_ablation"}
