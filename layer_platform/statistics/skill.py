"""Does a classifier beat chance? A layer is reported as a finding only for one that does.

A network at chance still attributes its output to some layer: the layers differ in brightness
and stiffness, and Integrated Gradients scales with the input, so a chance-level model's saliency
can rank one layer first with a tight CI (on a simulated cohort without any planted driver the
B-mode+SWE model's Integrated Gradients put muscle first, CI 0.101–0.109, Friedman p 4e-23).
That describes the network, not pain. LAYER's question is which tissue drives a *prediction* of
pain, so a mode's verdict requires its classifier to predict pain: the 95 % CIs of both its
cross-validated AUC and its held-out AUC must lie above 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The AUC of a classifier that has learned nothing.
CHANCE_AUC = 0.5


@dataclass(frozen=True)
class AucEstimate:
    """An AUC with its 95 % CI (NaN where the data could not give one)."""

    auc: float
    ci_low: float
    ci_high: float

    def above_chance(self) -> bool:
        return not math.isnan(self.ci_low) and self.ci_low > CHANCE_AUC

    def __str__(self) -> str:
        return f"{self.auc:.2f} (CI {self.ci_low:.2f}–{self.ci_high:.2f})"


@dataclass(frozen=True)
class ClassifierSkill:
    """A champion's cross-validated and held-out AUC, as ``pain_classifier`` recorded them."""

    cross_validated: AucEstimate | None
    held_out: AucEstimate | None

    @property
    def beats_chance(self) -> bool:
        return all(
            e is not None and e.above_chance() for e in (self.cross_validated, self.held_out)
        )

    def verdict(self) -> str:
        """The verdict for a mode whose classifier does not beat chance (see the module)."""
        if self.cross_validated is None or self.held_out is None:
            return "no layer stands out: the classifier's AUC is not recorded"
        return (
            "no layer stands out: the classifier does not beat chance (CV AUC "
            f"{self.cross_validated}, held-out {self.held_out})"
        )
