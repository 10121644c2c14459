"""Does a layer stand out? Gates checked in order; the verdict names the first that fails.

A ranking always has a first layer, even for a network at chance or with random weights, so a
layer is a *finding* only when every check that could refute it was run and did not:

1. the mode's classifier beats chance (``skill.permutation_skill`` on its out-of-fold
   predictions, p < 0.05), and, in a cohort from two or more known sites, also within sites
   (``confounding.within_site_skill``); a classifier whose skill does not hold within sites
   reads ``confounded by site``;
2. the method passes the model-randomization check of that champion (Adebayo et al. 2018);
   "not run" blocks: an unchecked method makes no claim;
3. the data-randomization check (a classifier retrained on subject-permuted labels, run on
   demand by ``layer-platform sanity``: ``attribution.data_randomization``) does not also give
   a standing-out layer; "not run" does not block, but every verdict says so;
4. the top layer beats every other layer: one-sided paired Wilcoxon tests (subjects as pairs)
   of the top layer vs each of the other five, each Holm-adjusted p < 0.05. The family is every
   ordered pair of layers (30 one-sided tests per method) of every method for that mode and
   subgroup: the top layer is picked from the same data, so each of the six layers is a
   candidate whose five tests the correction must cover (Holm controls the family-wise error
   under any dependence, so a wrongly claimed top layer needs a false rejection).

Fewer than two subjects with all six layers give ``TOO_FEW_SUBJECTS``. The Friedman test is
kept as a description (the layers differ), not as a gate: it rejects for almost any network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from layer_platform.statistics.comparisons import NO_STANDOUT, friedman_layers
from layer_platform.statistics.confounding import CONFOUNDED_BY_SITE, SiteSkill
from layer_platform.statistics.gates import ALPHA, holm, top_vs_others
from layer_platform.statistics.skill import SkillTest
from layer_platform.statistics.summary import subject_layer_matrix

#: Verdict when too few subjects have all six layers for the paired tests.
TOO_FEW_SUBJECTS = "too few subjects for a verdict"


@dataclass(frozen=True)
class Evidence:
    """What the checks outside the saliency rows found.

    ``skill``: per input mode, its classifier's permutation test (absent: no out-of-fold
    predictions recorded). ``model_randomization`` and ``data_randomization``: per
    ``"mode/method"``, whether the check passed (absent: not run). ``within_site``: per input
    mode, its classifier's skill within sites (absent: sites not recorded).
    """

    skill: Mapping[str, SkillTest] = field(default_factory=dict)
    model_randomization: Mapping[str, bool] = field(default_factory=dict)
    data_randomization: Mapping[str, bool] = field(default_factory=dict)
    within_site: Mapping[str, SiteSkill] = field(default_factory=dict)

    def confounded_by_site(self, mode: str) -> bool:
        """The classifier beats chance, but not within the cohort's sites."""
        skill, site = self.skill.get(mode), self.within_site.get(mode)
        return bool(skill and skill.beats_chance and site and site.applies and not site.holds)


@dataclass(frozen=True)
class Verdict:
    """Does any layer stand out for one input mode, method and subgroup?"""

    layer: str | None
    statement: str
    friedman_statistic: float
    friedman_p: float
    n_subjects: int
    #: The largest Holm-adjusted p of the top layer's paired tests (NaN without a test).
    holm_p: float = float("nan")
    #: Whether the verdict survives every layer eroded and dilated by one voxel
    #: (``statistics.boundary``); None until that check ran.
    boundary_sensitivity: str | None = None
    #: Layers whose size differs between MP and control subjects (``statistics.anatomy``),
    #: comma-separated; None when none does or before that check ran.
    layer_size_differs: str | None = None


@dataclass(frozen=True)
class _Tested:
    top: str
    #: One-sided p of "layer a above layer b" for every ordered pair (a, b).
    p_values: dict[tuple[str, str], float]
    friedman_statistic: float
    friedman_p: float
    n_subjects: int


def _tested(table: pd.DataFrame) -> _Tested | None:
    matrix = subject_layer_matrix(table)
    try:
        friedman = friedman_layers(table)
    except ValueError:
        return None
    top = str(matrix.mean().idxmax())
    pairs = {(str(a), b): p for a in matrix.columns for b, p in top_vs_others(matrix, a).items()}
    return _Tested(top, pairs, friedman.statistic, friedman.p_value, friedman.n_subjects)


def _blocking_gate(mode: str, method: str, evidence: Evidence) -> str | None:
    """The statement of the first check (1-3) that stops a finding, else None."""
    skill = evidence.skill.get(mode)
    if skill is None:
        return f"{NO_STANDOUT}: the classifier's out-of-fold predictions are not recorded"
    if not skill.beats_chance:
        return f"{NO_STANDOUT}: the classifier does not beat chance ({skill})"
    if evidence.confounded_by_site(mode):
        return (
            f"{NO_STANDOUT}: {CONFOUNDED_BY_SITE}: the classifier beats chance ({skill}) but not"
            f" within sites ({evidence.within_site[mode]})"
        )
    key = f"{mode}/{method}"
    if key not in evidence.model_randomization:
        return (
            f"{NO_STANDOUT}: the model-randomization check was not run for {method} (or on"
            " too few scans to decide)"
        )
    if not evidence.model_randomization[key]:
        return (
            f"{NO_STANDOUT}: {method} fails the model-randomization check (its layer profile"
            " survives random weights)"
        )
    if evidence.data_randomization.get(key) is False:
        return (
            f"{NO_STANDOUT}: a classifier trained on permuted labels also gives a standing-out"
            " layer (data-randomization check)"
        )
    return None


def data_randomization_note(mode: str, method: str, evidence: Evidence) -> str:
    passed = evidence.data_randomization.get(f"{mode}/{method}")
    return "data randomization not run" if passed is None else "data randomization passed"


@dataclass(frozen=True)
class LayerFamily:
    """Gate 4 over one family (a mode and subgroup's methods): per method, its top layer's
    tests (None: too few subjects) and the largest Holm-adjusted p of that layer's five
    tests, the correction running over every method's 30 ordered pairs together."""

    tested: dict[str, _Tested | None]
    worst: dict[str, float]
    size: int

    @property
    def n_methods(self) -> int:
        return sum(1 for t in self.tested.values() if t)

    def holm_p(self, method: str) -> float:
        """The top layer's largest Holm-adjusted p (1 when it has no test, NaN without one)."""
        return float("nan") if self.tested[method] is None else self.worst.get(method, 1.0)

    def standout(self, method: str, alpha: float = ALPHA) -> str | None:
        """The layer that beats every other one for ``method``, or None."""
        found = self.tested[method]
        return found.top if found is not None and self.holm_p(method) < alpha else None


def layer_family(tables: Mapping[str, pd.DataFrame]) -> LayerFamily:
    """Gate 4's tests of every method in ``tables`` (method -> long table of scores)."""
    tested = {method: _tested(table) for method, table in tables.items()}
    family = [(m, pair, p) for m, t in tested.items() if t for pair, p in t.p_values.items()]
    adjusted = holm([p for _, _, p in family]) if family else np.array([])
    worst: dict[str, float] = {}  # per method, the largest adjusted p of its top's five tests
    for (method, (above, _), _), p in zip(family, adjusted, strict=True):
        if above == tested[method].top:
            worst[method] = max(worst.get(method, 0.0), float(p))
    return LayerFamily(tested, worst, len(family))


def family_verdicts(
    tables: Mapping[str, pd.DataFrame], mode: str, evidence: Evidence, *, alpha: float = ALPHA
) -> dict[str, Verdict]:
    """Per method, the verdict of one mode and subgroup; ``tables`` maps each method to its long
    table of scores. Holm's correction runs over every method's top-vs-other tests together."""
    tests = layer_family(tables)
    verdicts = {}
    for method, found in tests.tested.items():
        if found is None:
            nan = float("nan")
            verdicts[method] = Verdict(None, TOO_FEW_SUBJECTS, nan, nan, 0)
            continue
        p = tests.holm_p(method)
        statement = _blocking_gate(mode, method, evidence)
        layer = None
        family_size = f"{tests.size} paired tests across {tests.n_methods} method(s)"
        if statement is None and tests.standout(method, alpha) is None:
            statement = (
                f"{NO_STANDOUT}: {found.top} does not beat every other layer (Holm-adjusted "
                f"p = {p:.2g} >= {alpha} over {family_size})"
            )
        elif statement is None:
            layer = found.top
            statement = (
                f"{found.top} stands out: above every other layer (paired Wilcoxon, "
                f"Holm-adjusted p <= {p:.2g} < {alpha} over {family_size}); "
                f"{evidence.skill[mode]}; model randomization passed; "
                f"{data_randomization_note(mode, method, evidence)}"
            )
        verdicts[method] = Verdict(
            layer, statement, found.friedman_statistic, found.friedman_p, found.n_subjects, p
        )
    return verdicts
