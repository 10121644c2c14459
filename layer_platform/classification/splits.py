"""Subject-level splits: a held-out test set plus K development folds, by salted hash.

Both sides of a subject (and any rescans) share anatomy and label, so splitting scans would leak:
every decision here is made per subject and every scan follows its subject.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from layer_platform.classification.data import encode_label
from layer_platform.labels import PAIN_LABELS

TEST_ROLE = "test"
DEVELOPMENT_ROLE = "development"
#: The assignment rule (:func:`assign_subject`); bump it if the rule ever changes.
SPLIT_SCHEME = "subject-hash-v1"


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
class SplitScheme:
    """The rule that fixes every subject's role and fold: recorded as a tag on each model
    version, so a model's development and held-out subjects are known wherever it is used."""

    n_folds: int
    test_fraction: float
    seed: int

    def tag(self) -> str:
        return f"{SPLIT_SCHEME} n_folds={self.n_folds} test={self.test_fraction} salt={self.seed}"

    @classmethod
    def from_tag(cls, tag: str | None) -> SplitScheme | None:
        """The scheme a :meth:`tag` names; None for no tag or another rule (older versions)."""
        parts = (tag or "").split()
        if len(parts) != 4 or parts[0] != SPLIT_SCHEME:
            return None
        values = dict(part.split("=", 1) for part in parts[1:])
        return cls(int(values["n_folds"]), float(values["test"]), int(values["salt"]))

    def assign(self, subject_id: str) -> int | None:
        """The subject's development fold, or None for a test subject."""
        return assign_subject(subject_id, self.n_folds, self.test_fraction, self.seed)

    def member_for(self, subject_id: str) -> int:
        """The fold-ensemble member that explains a scan of this subject: its fold's for a
        development subject; for a test subject, which no member trained on, the fold its
        fold hash would give, so test scans spread evenly and stably over the members."""
        return _fold(subject_id, self.n_folds, self.seed)


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

    def scheme(self) -> str:
        """What fixes every subject's role and fold (``SplitScheme.tag``)."""
        return SplitScheme(self.n_folds, self.test_fraction, self.seed).tag()

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


def _unit(seed: int, purpose: str, subject_id: str) -> float:
    """A uniform draw in [0, 1) that depends only on the salt, the purpose and the subject."""
    digest = hashlib.sha256(f"layer-split|{seed}|{purpose}|{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_subject(subject_id: str, n_folds: int, test_fraction: float, seed: int) -> int | None:
    """The subject's development fold, or None when it is a test subject.

    A pure function of the subject id and the salt (``seed``): no other subject, no arrival
    order and no cohort size enters, so an arriving subject never moves an existing one. Role
    and fold come from two independent hashes: test when the first is below ``test_fraction``,
    fold ``floor(K * second)`` otherwise (so changing the fraction never reshuffles folds).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"holdout fraction must be in (0, 1); got {test_fraction}")
    if _unit(seed, "role", subject_id) < test_fraction:
        return None
    return _fold(subject_id, n_folds, seed)


def _fold(subject_id: str, n_folds: int, seed: int) -> int:
    """``floor(K * second hash)``: independent of the role draw."""
    return min(int(_unit(seed, "fold", subject_id) * n_folds), n_folds - 1)


def _check_strata(
    labels: Mapping[str, str], fold_of: Mapping[str, int | None], n_folds: int
) -> None:
    """Every fold and the test set need both classes (AUC, early stopping, threshold).

    Hash thresholds give each label the configured proportions only in expectation; a small
    cohort can leave a fold or the test set with one class. That is reported, never patched by
    moving subjects (which would break stability): more subjects, or another salt, fixes it.
    """
    for part in [None, *range(n_folds)]:
        present = {labels[s] for s, f in fold_of.items() if f == part}
        for label in PAIN_LABELS:
            if label not in present:
                where = "the test set" if part is None else f"fold {part}"
                raise ValueError(
                    f"{where} has no {label} subject ({len(labels)} subjects); "
                    "the split needs both classes in every fold and in the test set: "
                    "add subjects or change the salt (split_seed)"
                )


def make_subject_split(
    scans: Iterable[LabelledScan], n_folds: int = 5, test_fraction: float = 0.2, seed: int = 0
) -> SubjectSplit:
    """Assign each subject to the test set or a development fold by salted hash (``seed``).

    Stratification is by hash threshold within each label: the same thresholds apply to MP and
    control subjects, and the hash is independent of the label, so each label's expected test
    share is ``test_fraction`` and its expected fold shares are equal. Realised counts vary
    (binomially) around those; a split missing a class somewhere is refused (see
    :func:`_check_strata`). Nothing is ranked, so the split never moves as subjects arrive.
    Make it once over every labelled scan and reuse it for all input modes.
    """
    if n_folds < 2:
        raise ValueError(f"need at least 2 folds; got {n_folds}")
    scans = list(scans)
    labels = subject_labels(scans)
    fold_of = {s: assign_subject(s, n_folds, test_fraction, seed) for s in sorted(labels)}
    for label in PAIN_LABELS:
        n_dev = sum(1 for s, f in fold_of.items() if f is not None and labels[s] == label)
        if n_dev < n_folds:
            raise ValueError(
                f"only {n_dev} {label} subjects outside the test set; "
                f"{n_folds}-fold CV needs at least {n_folds}"
            )
    _check_strata(labels, fold_of, n_folds)
    rows = tuple(
        SplitRow(scan.scan_id, scan.subject_id, scan.label, fold_of[scan.subject_id])
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
