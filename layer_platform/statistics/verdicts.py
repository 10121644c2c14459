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
4. the top layer beats every other layer: one-sided paired Wilcoxon tests (subjects as pairs:
   those of the subgroup ranked, by default the MP subjects, ``ranking.subgroup``) of the top
   layer vs each of the other five, all of them (an intersection-union test: the
   claim's p is the largest of its five). The top layer is picked from the same data, so each
   of the six layers is a candidate claim, and so is each pair of layers (the two beat each
   of the other four: a driver can span two layers, neither above the other); Holm's
   correction (family-wise error under any dependence) runs over every candidate of every
   method that can claim: a method that a gate (1-3) blocks makes no claim, so its tests need
   no correction and stay out of the family. The finding is the top layer alone, else the
   top layer and one other together, else none.
   Layer ablation of a two-channel input (``bmode_swe``) is also read per modality: the top
   layer (of the whole-layer ranking) stands out when it beats every other layer in the
   whole-layer deltas *or* in one modality channel's deltas (that channel alone replaced), and
   each modality's candidates join the family. A driver lives in one modality; replacing
   the other modality's channel of the same layer adds that channel's unrelated effect to the
   whole-layer delta (of either sign, differing between subjects), which can hide the driver
   from the paired tests; the per-channel deltas isolate it.

Fewer than two subjects with all six layers give ``TOO_FEW_SUBJECTS``. The Friedman test is
kept as a description (the layers differ), not as a gate: it rejects for almost any network.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations

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
    #: The Holm-adjusted p of the finding's claim; without a finding, of the top layer's own
    #: (NaN without a test).
    holm_p: float = float("nan")
    #: Whether the verdict survives every layer eroded and dilated by one voxel
    #: (``statistics.boundary``); None until that check ran.
    boundary_sensitivity: str | None = None
    #: Layers whose size differs between MP and control subjects (``statistics.anatomy``),
    #: comma-separated; None when none does or before that check ran.
    layer_size_differs: str | None = None
    #: The view whose tests the finding (or, without one, the smallest ``holm_p``) rests on:
    #: ``WHOLE_LAYER``, or a modality whose channel alone was ablated (``bmode``, ``swe``).
    view: str = ""
    #: The layer that shares the finding with ``layer`` (the two together beat every other
    #: layer, ``layer`` alone does not); None for a single layer or no finding.
    partner: str | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers that stand out (none, one, or a pair with the top layer first)."""
        return tuple(x for x in (self.layer, self.partner) if x is not None)


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


#: The view of a method's own score (``score_column``); the others are modality channels.
WHOLE_LAYER = ""

#: Per method, its views' long tables of scores: ``WHOLE_LAYER`` (which ranks the layers and
#: picks the top one), and for layer ablation of a two-channel input one per modality.
MethodViews = Mapping[str, Mapping[str, pd.DataFrame]]


@dataclass(frozen=True)
class Finding:
    """A claim that passed: the layers that beat every other layer (the top layer first, and
    the layer it shares the finding with, if any), its Holm-adjusted p and its view."""

    layers: tuple[str, ...]
    holm_p: float
    view: str


@dataclass(frozen=True)
class LayerFamily:
    """Gate 4 over one family (a mode and subgroup's methods that can claim): per method, its
    whole-layer tests (None: too few subjects), and per view the Holm-adjusted p of each claim
    that contains the top layer (it alone, or it and one other layer); ``size`` counts the
    family's candidate claims (21 per view of each method that can claim: six layers, 15
    pairs). A method outside the family gets the p it would have had inside it, leaving the
    others' unchanged. ``raw`` holds the same claims' uncorrected p's, so that a study of the
    correction (``bench.verdict_power``) judges exactly the claims gate 4 judges."""

    tested: dict[str, _Tested | None]
    adjusted: dict[str, dict[str, dict[tuple[str, ...], float]]]
    raw: dict[str, dict[str, dict[tuple[str, ...], float]]]
    claimable: tuple[str, ...]
    size: int

    @property
    def n_methods(self) -> int:
        return sum(1 for m in self.claimable if self.tested.get(m))

    def _best(self, method: str, size: int) -> tuple[float, str, tuple[str, ...]] | None:
        """The smallest adjusted p of ``method``'s claims of ``size`` layers, with its view and
        layers (the whole-layer view first on a tie)."""
        found = [
            (p, view != WHOLE_LAYER, view, claim)
            for view, claims in self.adjusted.get(method, {}).items()
            for claim, p in claims.items()
            if len(claim) == size
        ]
        if not found:
            return None
        p, _, view, claim = min(found)
        return p, view, claim

    def view(self, method: str) -> str:
        """The view in which the top layer alone comes closest to beating every other one."""
        best = self._best(method, 1)
        return best[1] if best else WHOLE_LAYER

    def holm_p(self, method: str) -> float:
        """The top layer's own claim: its Holm-adjusted p in its best view (1 when it has no
        test, NaN without one)."""
        if self.tested[method] is None:
            return float("nan")
        best = self._best(method, 1)
        return best[0] if best else 1.0

    def finding(self, method: str, alpha: float = ALPHA) -> Finding | None:
        """The top layer alone when its claim passes, else the best passing claim of the top
        layer and one other, else None."""
        found = self.tested[method]
        if found is None:
            return None
        for size in (1, 2):
            best = self._best(method, size)
            if best is not None and best[0] < alpha:
                p, view, claim = best
                return Finding((found.top, *(x for x in claim if x != found.top)), p, view)
        return None


#: A candidate claim: (method, view, its layers) and its intersection-union p.
_Candidate = tuple[str, str, tuple[str, ...], float]


def layer_family(views: MethodViews, claimable: Collection[str] | None = None) -> LayerFamily:
    """Gate 4's tests of every method in ``views`` (method -> view -> long table of scores),
    Holm's family being the methods in ``claimable`` (None: every method); a method without a
    ``WHOLE_LAYER`` view is not tested."""
    tested = {m: _tested(v[WHOLE_LAYER]) for m, v in views.items() if WHOLE_LAYER in v}
    candidates: dict[str, list[_Candidate]] = {}
    for method, found in tested.items():
        if found is None:
            continue
        candidates[method] = []
        for view, table in views[method].items():
            pairs = found.p_values if view == WHOLE_LAYER else _view_pairs(table, found.top)
            candidates[method] += _claims(method, view, pairs)
    members = tuple(m for m in candidates if claimable is None or m in claimable)
    family = [c for m in members for c in candidates[m]]
    shared = holm([c[-1] for c in family])
    adjusted: dict[str, dict[str, dict[tuple[str, ...], float]]] = {}
    raw: dict[str, dict[str, dict[tuple[str, ...], float]]] = {}
    for method, found in tested.items():
        if found is None:
            continue
        pool, ps = family, shared
        if method not in members:  # the p it would have had inside the family
            pool = [*family, *candidates[method]]
            ps = holm([c[-1] for c in pool])
        mine, uncorrected = adjusted.setdefault(method, {}), raw.setdefault(method, {})
        for (m, view, claim, raw_p), p in zip(pool, ps, strict=True):
            if m == method and found.top in claim:
                mine.setdefault(view, {})[claim] = float(p)
                uncorrected.setdefault(view, {})[claim] = float(raw_p)
    return LayerFamily(tested, adjusted, raw, members, len(family))


def _claims(method: str, view: str, pairs: Mapping[tuple[str, str], float]) -> list[_Candidate]:
    """Every claim in one view: each layer, and each pair of layers, beats every layer
    outside it; its p is the largest of those tests' (intersection-union). A pair is a claim
    because a driver can span two layers, neither of which beats the other."""
    layers = list(dict.fromkeys(a for a, _ in pairs))
    claims = [(a,) for a in layers] + list(combinations(layers, 2))
    return [
        (method, view, claim, max(pairs[(a, b)] for a in claim for b in layers if b not in claim))
        for claim in claims
    ]


def _view_pairs(table: pd.DataFrame, top: str) -> dict[tuple[str, str], float]:
    """Every ordered pair's one-sided p in a modality view: each layer is a candidate there,
    as in the whole-layer view. None where ``top`` is missing: such a view cannot confirm the
    top layer, so its tests lead to no claim and need no correction."""
    matrix = subject_layer_matrix(table)
    if top not in matrix.columns or len(matrix.dropna()) < 2:
        return {}
    return {(str(a), b): p for a in matrix.columns for b, p in top_vs_others(matrix, a).items()}


def claimable_methods(mode: str, methods: Iterable[str], evidence: Evidence) -> tuple[str, ...]:
    """The methods of ``mode`` that no gate (1-3) blocks: Holm's family of gate 4."""
    return tuple(m for m in methods if _blocking_gate(mode, m, evidence) is None)


def family_verdicts(
    views: MethodViews, mode: str, evidence: Evidence, *, alpha: float = ALPHA
) -> dict[str, Verdict]:
    """Per method, the verdict of one mode and subgroup; ``views`` maps each method to its
    views' long tables of scores. Holm's correction runs over the candidate claims of every
    method no gate blocks (``claimable_methods``), each view's together."""
    tests = layer_family(views, claimable_methods(mode, views, evidence))
    verdicts = {}
    for method, found in tests.tested.items():
        if found is None:
            nan = float("nan")
            verdicts[method] = Verdict(None, TOO_FEW_SUBJECTS, nan, nan, 0)
            continue
        p, view = tests.holm_p(method), tests.view(method)
        statement = _blocking_gate(mode, method, evidence)
        family_size = f"{tests.size} candidate claims of {tests.n_methods} method(s)"
        claim = tests.finding(method, alpha) if statement is None else None
        if statement is None and claim is None:
            statement = (
                f"{NO_STANDOUT}: {found.top} does not beat every other layer (Holm-adjusted "
                f"p = {p:.2g} >= {alpha} over {family_size})"
            )
        elif claim is not None:
            where = f" when only its {claim.view} channel is ablated" if claim.view else ""
            named, alone = f"{claim.layers[0]} stands out", ""
            if claim.layers[1:]:
                named = f"{claim.layers[0]} and {claim.layers[1]} stand out together"
                alone = f"; {found.top} alone does not (Holm-adjusted p = {p:.2g})"
            statement = (
                f"{named}: above every other layer{where} (paired Wilcoxon, Holm-adjusted p <= "
                f"{claim.holm_p:.2g} < {alpha} over {family_size}{alone}); "
                f"{evidence.skill[mode]}; model randomization passed; "
                f"{data_randomization_note(mode, method, evidence)}"
            )
            p, view = claim.holm_p, claim.view
        verdicts[method] = Verdict(
            claim.layers[0] if claim else None,
            statement,
            found.friedman_statistic,
            found.friedman_p,
            found.n_subjects,
            p,
            view=view,
            partner=claim.layers[1] if claim and claim.layers[1:] else None,
        )
    return verdicts
