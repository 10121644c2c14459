"""Which network explains a scan: never one that trained on it.

A champion fold ensemble's member ``k`` never trained on a development subject of fold ``k``
(the hash split never moves a subject, arrivals included), so a labelled development scan is
explained by that member (``out_of_fold``); a test scan (``held_out``) and an unlabelled scan
(``unlabelled``) by the whole ensemble, which trained on neither. A labelled development scan
of a champion without members (a refit trained on every development scan) has no
out-of-sample explainer and is not explained. A champion whose version records no split
(registered before issue #16, or by hand) is applied as it is and its rows say ``unverified``:
they never enter a headline statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from layer_platform.classification.network import FoldEnsemble, last_conv_block
from layer_platform.classification.splits import SplitScheme
from layer_platform.saliency_names import HELD_OUT, OUT_OF_FOLD, UNLABELLED, UNVERIFIED


@dataclass(frozen=True)
class Explainer:
    """The network that explains one scan, its Grad-CAM layer, and why it may (``explained_by``).

    ``fold`` is the development fold of the explained scan (None for test and unlabelled
    scans, and for ``unverified``): it also picks the scan's reference (``cohort_reference``).
    """

    model: nn.Module
    target_layer: nn.Module
    explained_by: str
    fold: int | None = None


def choose_explainer(
    model: nn.Module, scheme: SplitScheme | None, subject_id: str, label: str | None
) -> Explainer | None:
    """The out-of-sample explainer of a scan of ``subject_id`` (None: there is none)."""
    if label is None:
        return Explainer(model, last_conv_block(model), UNLABELLED)
    if scheme is None:
        return Explainer(model, last_conv_block(model), UNVERIFIED)
    fold = scheme.assign(subject_id)
    if fold is None:
        return Explainer(model, last_conv_block(model), HELD_OUT)
    if isinstance(model, FoldEnsemble) and model.n_members == scheme.n_folds:
        member = model.member(fold)
        return Explainer(member, last_conv_block(member), OUT_OF_FOLD, fold)
    return None
