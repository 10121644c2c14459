"""The data-randomization check (Adebayo et al. 2018): does a layer also stand out for a
classifier that learned nothing but noise?

The champion's training is repeated with one change: which subjects are MP is permuted. Each
subject keeps all its scans and gets one label; the permutation runs **within each development
fold**, so every fold keeps its class counts (the split's stratification, and each fold model's
training set keeps both classes, as the champion's did) and the fold models get the champion's
folds, ``ClassifierConfig`` and budget (``cross_validation.train_folds``). Every development
scan is then explained out of fold, by the permuted member that did not train on it
(``explainer.choose_explainer``), with the reported run's per-scan attribution settings, and
the rows of the subgroup the ranking reads (by the permuted labels: with ``MP``, the subjects
the permuted model was told are MP) go through the verdict's layer test (gate 4: the top layer
beats every other, Holm-corrected over the methods checked together). A label-permuted model
has nothing real to find, so the check **passes for a method when no layer stands out**; a
layer that stands out anyway comes from the data's geometry or the method, not from the pain
labels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch

from layer_platform.attribution.core import AttributionConfig
from layer_platform.attribution.explainer import choose_explainer
from layer_platform.attribution.scan_profile import profile_scan
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.cross_validation import train_folds
from layer_platform.classification.data import Item
from layer_platform.classification.network import FoldEnsemble
from layer_platform.classification.splits import SplitRow, SplitScheme, SubjectSplit, subject_labels
from layer_platform.errors import ScanError
from layer_platform.saliency_names import OUT_OF_FOLD
from layer_platform.statistics.gates import ALPHA
from layer_platform.statistics.ranking import method_views
from layer_platform.statistics.verdicts import layer_family

#: Version of how the check runs; stored results of another protocol are recomputed.
PROTOCOL = "fold-permutation-v1"
#: The ranking subgroups the check can mirror: every development scan, or one class's scans by
#: the permuted labels the model learned (the ranking's ``MP`` are the scans its model was
#: told are MP).
CHECKED_GROUPS: tuple[str, ...] = ("all", "MP", "control")


def protocol(group: str) -> str:
    """The protocol of a check mirroring a ranking of ``group``'s scans: a result for one
    subgroup says nothing of another, so each is stored (and reused) under its own."""
    return PROTOCOL if group == "all" else f"{PROTOCOL}/{group}"


_log = logging.getLogger(__name__)
#: Draws of the permutation before giving up on one that moves a label (see below).
MAX_DRAWS = 1000


def permute_subject_labels(
    items: Sequence[Item], fold_of: Callable[[str], int | None], seed: int
) -> list[Item]:
    """``items`` with their subjects' labels permuted within each fold (``fold_of``), seeded.

    A subject's scans share its new label; each fold keeps its numbers of MP and control
    subjects. A draw that moves no label (the identity, likely with few subjects per fold) is
    drawn again: it would retrain the champion itself.

    Raises:
        ValueError: a subject without a fold (a test subject), or no fold holding both classes
            (no permutation within folds can move a label).
    """
    labels = subject_labels(items)
    folds: dict[int, list[str]] = {}
    for subject in sorted(labels):
        fold = fold_of(subject)
        if fold is None:
            raise ValueError(f"subject {subject!r} is a test subject: permute development only")
        folds.setdefault(fold, []).append(subject)
    if all(len({labels[s] for s in members}) < 2 for members in folds.values()):
        raise ValueError("no fold holds both classes: no permutation within folds moves a label")
    rng = np.random.default_rng(seed)
    for _ in range(MAX_DRAWS):
        permuted = {}
        for fold in sorted(folds):
            members = folds[fold]
            drawn = rng.permutation([labels[s] for s in members])
            permuted.update(zip(members, (str(label) for label in drawn), strict=True))
        if permuted != labels:
            return [replace(item, label=permuted[item.subject_id]) for item in items]
    raise ValueError(f"{MAX_DRAWS} draws moved no label")  # pragma: no cover (p < 2**-1000)


def train_permuted(
    items: Sequence[Item], scheme: SplitScheme, config: ClassifierConfig, seed: int
) -> tuple[FoldEnsemble, dict[str, str]]:
    """The fold ensemble trained like the champion (``scheme``'s folds, ``config``) on the
    development ``items`` with permuted labels (:func:`permute_subject_labels`), and each
    subject's permuted label."""
    development = [item for item in items if scheme.assign(item.subject_id) is not None]
    permuted = permute_subject_labels(development, scheme.assign, seed)
    rows = tuple(
        SplitRow(i.scan_id, i.subject_id, i.label, scheme.assign(i.subject_id)) for i in permuted
    )
    split = SubjectSplit(rows, scheme.n_folds, scheme.test_fraction, scheme.seed)
    model = FoldEnsemble([fold.model for fold in train_folds(permuted, split, config)]).eval()
    return model, subject_labels(permuted)


@dataclass(frozen=True, eq=False)
class ScanToExplain:
    """A development scan (its true label: it only picks the explainer) with its layer labels,
    the reported run's attribution settings for it, its mode's ``no_signal_channels`` (so its
    rows count measured voxels only, as the reported rows do) and ``channel_modalities`` (so
    they carry each modality's ablation, which the verdict's layer test reads)."""

    item: Item
    labels: np.ndarray
    config: AttributionConfig
    no_signal_channels: tuple[int, ...] = ()
    modalities: tuple[str, ...] = ()


def explain_out_of_fold(
    model: FoldEnsemble,
    scheme: SplitScheme,
    scans: Iterable[ScanToExplain],
    methods: Sequence[str],
) -> pd.DataFrame:
    """One row per scan, method and layer (``LayerRow``'s columns with ``scan_id``,
    ``subject_id`` and ``method``), each scan explained by the member that never trained on it;
    a scan without such a member (a test subject) is left out."""
    device = next(model.parameters()).device
    records = []
    for scan in scans:
        item = scan.item
        explainer = choose_explainer(model, scheme, item.subject_id, item.label)
        if explainer is None or explainer.explained_by != OUT_OF_FOLD:
            continue
        try:
            profiles = profile_scan(
                explainer.model,
                torch.as_tensor(item.x[None], device=device),
                scan.labels,
                methods,
                scan.config,
                target_layer=explainer.target_layer,
                no_signal_channels=scan.no_signal_channels,
            )
        except ScanError as error:  # one scan never stops the others (the run quarantined it)
            _log.warning(f"{item.scan_id} left out of the check ({type(error).__name__})")
            continue
        ids = {"scan_id": item.scan_id, "subject_id": item.subject_id}
        for method, profile in profiles.items():
            records += [
                {
                    **ids,
                    "method": method,
                    **asdict(row),
                    **profile.modality_deltas(scan.modalities, row.layer),
                }
                for row in profile.rows
            ]
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class PermutedVerdict:
    """Gate 4 on the permuted model's rows for one method; the check passes when no layer
    stands out. ``standout_layer``: the layer, or comma-separated pair, that stands out;
    ``holm_p``: its claim's (else the top layer's); ``n_tests``: the Holm family's candidate
    claims (every method checked together)."""

    method: str
    standout_layer: str | None
    holm_p: float
    n_subjects: int
    n_tests: int

    @property
    def passed(self) -> bool:
        return self.standout_layer is None


def judge(
    rows: pd.DataFrame, methods: Sequence[str], alpha: float = ALPHA
) -> dict[str, PermutedVerdict]:
    """Per method of ``methods`` with a layer test (two or more subjects with all six layers),
    its verdict; a method without one is absent (too few subjects: the check is not run)."""
    if rows.empty:
        return {}
    family = layer_family(method_views(rows[rows["method"].isin(methods)]))
    verdicts = {}
    for method, found in family.tested.items():
        if found is not None:
            finding = family.finding(method, alpha)
            verdicts[method] = PermutedVerdict(
                method,
                ",".join(finding.layers) if finding else None,
                finding.holm_p if finding else family.holm_p(method),
                found.n_subjects,
                family.size,
            )
    return verdicts
