"""Subject-level splits: a stratified held-out test set plus stratified K folds of the rest.

Both sides of a subject (and any rescans) share anatomy and label, so splitting scans would leak:
every decision here is made per subject and every scan follows its subject.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from layer_platform.classification.data import encode_label
from layer_platform.labels import PAIN_LABELS

TEST_ROLE = "test"
DEVELOPMENT_ROLE = "development"


class LabelledScan(Protocol):
    """Anything with the three columns a split needs (``Scan``, ``Item``, ``SplitRow``)."""

    @property
    def scan_id(self) -> str: ...
    @property
    def subject_id(self) -> str: ...
    @property
    def label(self) -> str: ...


@dataclass(frozen=True)
class LabelledRow:
    """A ``LabelledScan`` from a warehouse row (``scans``: scan_id, subject_id, label)."""

    scan_id: str
    subject_id: str
    label: str


@dataclass(frozen=True)
class SplitRow:
    """One scan's assignment; ``fold`` is None for held-out test subjects."""

    scan_id: str
    subject_id: str
    label: str
    fold: int | None

    @property
    def role(self) -> str:
        return TEST_ROLE if self.fold is None else DEVELOPMENT_ROLE


@dataclass(frozen=True)
class SubjectSplit:
    """Which scans are test, and which CV fold each development scan validates in."""

    rows: tuple[SplitRow, ...]
    n_folds: int
    test_fraction: float
    seed: int

    def _ids(self, keep: Callable[[SplitRow], bool]) -> frozenset[str]:
        return frozenset(row.scan_id for row in self.rows if keep(row))

    def test_ids(self) -> frozenset[str]:
        return self._ids(lambda row: row.fold is None)

    def development_ids(self) -> frozenset[str]:
        """All non-test scans: what the final model is trained on."""
        return self._ids(lambda row: row.fold is not None)

    def validation_ids(self, fold: int) -> frozenset[str]:
        return self._ids(lambda row: row.fold == fold)

    def training_ids(self, fold: int) -> frozenset[str]:
        return self._ids(lambda row: row.fold is not None and row.fold != fold)

    def partitions(self) -> dict[str, list[SplitRow]]:
        """Rows per disjoint partition (``fold_0`` … and ``test``), for leakage checks."""
        parts: dict[str, list[SplitRow]] = {f"fold_{k}": [] for k in range(self.n_folds)}
        parts[TEST_ROLE] = []
        for row in self.rows:
            parts[TEST_ROLE if row.fold is None else f"fold_{row.fold}"].append(row)
        return parts

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per scan (scan_id, subject_id, label, role, fold) for a table or a CSV."""
        return [
            {
                "scan_id": row.scan_id,
                "subject_id": row.subject_id,
                "label": row.label,
                "role": row.role,
                "fold": row.fold,
            }
            for row in self.rows
        ]

    def to_params(self) -> dict[str, int | float]:
        return {
            "n_folds": self.n_folds,
            "test_fraction": self.test_fraction,
            "split_seed": self.seed,
        }


def subject_labels(scans: Iterable[LabelledScan]) -> dict[str, str]:
    """Subject → label; the label is per subject, so disagreeing scans are an error."""
    labels: dict[str, str] = {}
    seen_scans: set[str] = set()
    for scan in scans:
        encode_label(scan.label)
        if scan.scan_id in seen_scans:
            raise ValueError(f"scan {scan.scan_id!r} appears twice")
        seen_scans.add(scan.scan_id)
        if labels.setdefault(scan.subject_id, scan.label) != scan.label:
            raise ValueError(f"subject {scan.subject_id!r} has scans labelled both MP and control")
    return labels


def _by_label(labels: Mapping[str, str]) -> dict[str, list[str]]:
    """Subjects per label, sorted so the result depends on the seed, not on input order."""
    return {
        label: sorted(subject for subject, lab in labels.items() if lab == label)
        for label in PAIN_LABELS
    }


def _holdout(labels: Mapping[str, str], fraction: float, rng: np.random.Generator) -> set[str]:
    """Stratified subject holdout: round(fraction·n) subjects per class, at least one each."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be in (0, 1); got {fraction}")
    held: set[str] = set()
    for label, subjects in _by_label(labels).items():
        n_held = max(1, round(fraction * len(subjects)))
        if n_held >= len(subjects):
            raise ValueError(
                f"cannot hold out {fraction:.0%} of {len(subjects)} {label} subjects and keep "
                "some of that class on both sides"
            )
        held.update(rng.permutation(subjects)[:n_held].tolist())
    return held


def make_subject_split(
    scans: Iterable[LabelledScan], n_folds: int = 5, test_fraction: float = 0.2, seed: int = 0
) -> SubjectSplit:
    """Hold out test subjects, then deal the rest into ``n_folds`` stratified folds.

    Folds are dealt round-robin per class after a seeded shuffle, continuing from where the
    previous class stopped, so per-class and total fold sizes each differ by at most one subject.
    Make the split once over every labelled scan and reuse it for all input modes: then the
    modes (and champion and challenger) are compared on the same test subjects.
    """
    if n_folds < 2:
        raise ValueError(f"need at least 2 folds; got {n_folds}")
    scans = list(scans)
    labels = subject_labels(scans)
    rng = np.random.default_rng(seed)
    test = _holdout(labels, test_fraction, rng)
    fold_of: dict[str, int] = {}
    offset = 0
    development = {subject: label for subject, label in labels.items() if subject not in test}
    for label, subjects in _by_label(development).items():
        if len(subjects) < n_folds:
            raise ValueError(
                f"only {len(subjects)} {label} subjects outside the test set; "
                f"{n_folds}-fold CV needs at least {n_folds}"
            )
        for i, subject in enumerate(rng.permutation(subjects).tolist()):
            fold_of[subject] = (offset + i) % n_folds
        offset += len(subjects)
    rows = tuple(
        SplitRow(scan.scan_id, scan.subject_id, scan.label, fold_of.get(scan.subject_id))
        for scan in scans
    )
    return SubjectSplit(rows, n_folds, test_fraction, seed)


def assert_no_subject_leakage(partitions: Mapping[str, Iterable[LabelledScan]]) -> None:
    """Raise AssertionError naming any subject found in more than one partition.

    Takes ``SubjectSplit.partitions()`` or any named groups (e.g. train / validation / test items).
    """
    home: dict[str, str] = {}
    leaks: list[str] = []
    for name, scans in partitions.items():
        for scan in scans:
            first = home.setdefault(scan.subject_id, name)
            if first != name:
                leaks.append(f"{scan.subject_id} ({first} and {name})")
    if leaks:
        raise AssertionError(
            f"subjects in more than one partition: {', '.join(sorted(set(leaks)))}"
        )
