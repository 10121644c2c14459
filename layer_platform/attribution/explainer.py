"""Which network explains a scan: never one that trained on it, and one network, not five.

A champion fold ensemble's member ``k`` never trained on a development subject of fold ``k``
(the hash split never moves a subject, arrivals included), so a labelled development scan is
explained by that member (``out_of_fold``). No member trained on a test subject, so a test
scan (``held_out``) is explained by one member too, the one its subject's fold hash names
(``SplitScheme.member_for``): every labelled scan is then explained by one network that never
saw it, at a fifth of the ensemble's cost, and the test scans spread evenly over the members.
An unlabelled scan (``unlabelled``) is explained by the whole champion, the model a user
applies to a new scan. A refit champion (one network trained on every development scan)
explains its test scans itself and has no out-of-sample explainer for a development scan,
which is not explained. A champion whose version records no split (registered before issue
#16, or by hand) is applied as it is and its rows say ``unverified``: they never enter a
headline statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from layer_platform.classification.network import FoldEnsemble, last_conv_block
from layer_platform.classification.splits import SplitScheme
from layer_platform.saliency_names import HELD_OUT, OUT_OF_FOLD, UNLABELLED, UNVERIFIED

#: How labelled scans are assigned their explainer; part of every row's attribution settings,
#: so rows explained under an earlier rule are stale and recomputed.
EXPLAINER_RULE = "one-member-v1"


@dataclass(frozen=True)
class Explainer:
    """The network that explains one scan, its Grad-CAM layer, and why it may (``explained_by``).

    ``member`` is the fold-ensemble member that explains the scan (None when the whole
    champion does): the scan's reference is built from the controls that member trained on
    (``cohort_reference``).
    """

    model: nn.Module
    target_layer: nn.Module
    explained_by: str
    member: int | None = None


def choose_explainer(
    model: nn.Module, scheme: SplitScheme | None, subject_id: str, label: str | None
) -> Explainer | None:
    """The out-of-sample explainer of a scan of ``subject_id`` (None: there is none)."""
    if label is None:
        return Explainer(model, last_conv_block(model), UNLABELLED)
    if scheme is None:
        return Explainer(model, last_conv_block(model), UNVERIFIED)
    fold = scheme.assign(subject_id)
    if isinstance(model, FoldEnsemble) and model.n_members == scheme.n_folds:
        k = scheme.member_for(subject_id)
        member = model.member(k)
        return Explainer(
            member, last_conv_block(member), HELD_OUT if fold is None else OUT_OF_FOLD, k
        )
    if fold is None:
        return Explainer(model, last_conv_block(model), HELD_OUT)
    return None
