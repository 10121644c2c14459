from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layer_platform.classification.splits import (
    SplitRow,
    assert_no_subject_leakage,
    make_subject_split,
)


@dataclass(frozen=True)
class Row:
    scan_id: str
    subject_id: str
    label: str


def cohort(n_mp: int, n_control: int, scans_per_subject: list[int] | None = None) -> list[Row]:
    labels = ["MP"] * n_mp + ["control"] * n_control
    counts = scans_per_subject or [2] * len(labels)
    return [
        Row(f"s{i}_scan{k}", f"s{i}", label)
        for i, (label, n) in enumerate(zip(labels, counts, strict=True))
        for k in range(n)
    ]


@st.composite
def cohorts(draw: st.DrawFn) -> tuple[list[Row], int, float, int]:
    n_folds = draw(st.integers(2, 5))
    test_fraction = draw(st.sampled_from([0.1, 0.2, 0.25]))
    # Enough subjects per class that n_folds remain after the test subjects are taken.
    least = math.ceil(n_folds / (1 - test_fraction)) + 1
    n_mp = draw(st.integers(least, 4 * n_folds))
    n_control = draw(st.integers(least, 4 * n_folds))
    scans = draw(st.lists(st.integers(1, 2), min_size=n_mp + n_control, max_size=n_mp + n_control))
    rows = draw(st.permutations(cohort(n_mp, n_control, scans)))
    return list(rows), n_folds, test_fraction, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=60, deadline=None)
@given(cohorts())
def test_every_scan_is_assigned_once_and_no_subject_spans_two_partitions(case) -> None:
    rows, n_folds, test_fraction, seed = case
    split = make_subject_split(rows, n_folds, test_fraction, seed)
    assert sorted(r.scan_id for r in split.rows) == sorted(r.scan_id for r in rows)
    assert_no_subject_leakage(split.partitions())
    homes = {}
    for row in split.rows:
        assert homes.setdefault(row.subject_id, row.fold) == row.fold
    # Stratified: per class, fold sizes (in subjects) differ by at most one, test has both classes.
    subject_fold = {r.subject_id: (r.label, r.fold) for r in split.rows}
    for label in ("MP", "control"):
        per_fold = Counter(f for lab, f in subject_fold.values() if lab == label and f is not None)
        sizes = [per_fold[k] for k in range(n_folds)]
        assert max(sizes) - min(sizes) <= 1
        assert any(lab == label and f is None for lab, f in subject_fold.values())
    fold_sizes = Counter(f for _, f in subject_fold.values() if f is not None)
    assert max(fold_sizes.values()) - min(fold_sizes.values()) <= 1
    # Fold views agree with the rows.
    for k in range(n_folds):
        assert split.validation_ids(k) | split.training_ids(k) == split.development_ids()
        assert not split.validation_ids(k) & split.training_ids(k)
    assert not split.development_ids() & split.test_ids()


def test_test_set_is_stratified_by_the_requested_fraction() -> None:
    split = make_subject_split(cohort(20, 30), n_folds=5, test_fraction=0.2, seed=3)
    test_subjects = {(r.subject_id, r.label) for r in split.rows if r.role == "test"}
    assert Counter(label for _, label in test_subjects) == {"MP": 4, "control": 6}


def test_split_is_deterministic_by_seed_and_independent_of_input_order() -> None:
    rows = cohort(12, 12)
    first = make_subject_split(rows, seed=7)
    again = make_subject_split(list(reversed(rows)), seed=7)
    other = make_subject_split(rows, seed=8)
    assign = lambda split: {r.scan_id: r.fold for r in split.rows}  # noqa: E731
    assert assign(first) == assign(again)
    assert assign(first) != assign(other)


def test_records_are_a_table_with_role_and_fold() -> None:
    split = make_subject_split(cohort(6, 6), n_folds=3, test_fraction=0.2, seed=0)
    records = split.to_records()
    assert set(records[0]) == {"scan_id", "subject_id", "label", "role", "fold"}
    assert {r["role"] for r in records} == {"development", "test"}
    assert all((r["fold"] is None) == (r["role"] == "test") for r in records)


def test_subjects_with_conflicting_labels_or_duplicate_scans_are_rejected() -> None:
    rows = [*cohort(6, 6), Row("s0_extra", "s0", "control")]
    with pytest.raises(ValueError, match="both MP and control"):
        make_subject_split(rows)
    with pytest.raises(ValueError, match="appears twice"):
        make_subject_split([*cohort(6, 6), Row("s0_scan0", "s0", "MP")])


def test_too_few_subjects_for_the_folds_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="5-fold CV needs at least 5"):
        make_subject_split(cohort(5, 10), n_folds=5, test_fraction=0.2)


def test_leakage_check_names_the_leaking_subject() -> None:
    a = SplitRow("x1", "subject_7", "MP", 0)
    b = SplitRow("x2", "subject_7", "MP", None)
    with pytest.raises(AssertionError, match="subject_7"):
        assert_no_subject_leakage({"train": [a], "test": [b]})
