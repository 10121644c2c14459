"""Does a verdict survive a one-voxel change of every layer boundary?

A segmenter errs at the layer boundaries, by about a voxel, and unannotated scans are explained
inside the platform's own segmentation. Each ``layer_saliency`` row carries its method's score
with every layer eroded, and with every layer dilated, by one voxel (``attribution.boundary``);
here gate 4 of ``verdicts`` (the top layer beats every other one, Holm over the candidate claims
of the methods that can claim) is run again on each of those scores. Gates 1-3 do not depend on
the boundaries.

A verdict whose layer (or pair) stands out ``survives`` when the same one stands out under erosion
and under dilation; otherwise it ``fails under erosion``, ``fails under dilation`` or ``fails under
erosion and dilation``, and its statement says what stood out instead. It is a caveat beside the
verdict, not a gate: the layer does stand out as segmented, and evidence at a membrane's edge can
be real; a failing verdict asks for a look at the segmentation before the finding is believed.
A verdict without a standing-out layer claims nothing (``not applicable``); a method without
boundary scores (layer Shapley, rows written before #17) is ``not computed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from layer_platform.saliency_names import BOUNDARIES
from layer_platform.statistics.gates import ALPHA
from layer_platform.statistics.verdicts import (
    Evidence,
    MethodViews,
    Verdict,
    claimable_methods,
    layer_family,
)

SURVIVES = "survives"
NOT_APPLICABLE = "not applicable"
NOT_COMPUTED = "not computed"
#: The perturbation's name in a verdict (``fails under erosion``).
_UNDER = {"eroded": "erosion", "dilated": "dilation"}


def with_boundary_sensitivity(
    verdicts: Mapping[str, Verdict],
    views: Mapping[str, MethodViews],
    mode: str,
    evidence: Evidence,
    *,
    alpha: float = ALPHA,
) -> dict[str, Verdict]:
    """``verdicts`` (per method, of one mode and subgroup) with ``boundary_sensitivity`` set,
    and a failing verdict's statement saying so. ``views``: per boundary (``BOUNDARIES``),
    method to its views of that boundary's score (``verdicts.MethodViews``); a method without
    the view its finding rests on is not computed. Each boundary's family holds the methods
    of the verdicts' own (those of ``mode`` no gate of ``evidence`` blocks)."""
    claimable = claimable_methods(mode, verdicts, evidence)
    families = {b: layer_family(views.get(b, {}), claimable) for b in BOUNDARIES}
    found = {}
    for method, verdict in verdicts.items():
        if verdict.layer is None:
            found[method] = replace(verdict, boundary_sensitivity=NOT_APPLICABLE)
            continue
        if any(verdict.view not in views.get(b, {}).get(method, {}) for b in BOUNDARIES):
            found[method] = replace(verdict, boundary_sensitivity=NOT_COMPUTED)
            continue
        findings = {b: families[b].finding(method, alpha) for b in BOUNDARIES}
        standouts = {b: f.layers if f else () for b, f in findings.items()}
        failed = [b for b in BOUNDARIES if set(standouts[b]) != set(verdict.layers)]
        if not failed:
            found[method] = replace(verdict, boundary_sensitivity=SURVIVES)
            continue
        outcome = "fails under " + " and ".join(_UNDER[b] for b in failed)
        details = "; ".join(f"{_UNDER[b]}: {_named(standouts[b])}" for b in failed)
        statement = (
            f"{verdict.statement}; boundary sensitivity: {outcome} of every layer by one voxel"
            f" ({details}), so the finding hinges on the layer boundaries"
        )
        found[method] = replace(verdict, statement=statement, boundary_sensitivity=outcome)
    return found


def _named(layers: tuple[str, ...]) -> str:
    if not layers:
        return "no layer stands out"
    return f"{layers[0]} stands out" if len(layers) == 1 else f"{' and '.join(layers)} stand out"
