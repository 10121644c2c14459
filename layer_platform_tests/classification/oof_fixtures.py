"""A hash split of the synthetic cohort, an untrained fold ensemble, and test items that fail
when read: the material of the "no test scan chooses a champion" tests (issue #16)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from layer_platform.classification.data import Item
from layer_platform.classification.modes import make_items
from layer_platform.classification.network import FoldEnsemble, SmallCNN3D
from layer_platform.classification.splits import SubjectSplit, make_subject_split
from layer_platform_tests.classification.synthetic import synthetic_scans

#: With 16 synthetic subjects this salt holds 2 test subjects per class in a 3-fold split.
SALT = 25


@dataclass(frozen=True)
class PoisonedItem:
    """A test scan whose input and label raise when read: reading them fails the test."""

    scan_id: str
    subject_id: str
    label: str

    @property
    def x(self) -> None:
        raise AssertionError(f"test scan {self.scan_id} was read")

    @property
    def y(self) -> None:
        raise AssertionError(f"test scan {self.scan_id} was read")


def cohort_items() -> tuple[SubjectSplit, list[Item]]:
    scans = synthetic_scans(n_subjects=16)
    return make_subject_split(scans, n_folds=3, test_fraction=0.25, seed=SALT), make_items(
        scans, "bmode"
    )


def poisoned(split: SubjectSplit, items: list[Item]) -> list:
    """``items`` with every test scan replaced by a :class:`PoisonedItem`."""
    test = split.test_ids()
    return [
        PoisonedItem(i.scan_id, i.subject_id, i.label) if i.scan_id in test else i for i in items
    ]


def untrained_ensemble(seed: int, n_members: int = 3) -> FoldEnsemble:
    torch.manual_seed(seed)
    return FoldEnsemble([SmallCNN3D(1, (2, 4)) for _ in range(n_members)]).eval()
