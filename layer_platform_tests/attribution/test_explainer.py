"""No scan is explained by a network that trained on it (issue #16)."""

from __future__ import annotations

from layer_platform.attribution.explainer import choose_explainer
from layer_platform.classification.splits import SplitScheme
from layer_platform.saliency_names import HELD_OUT, OUT_OF_FOLD, UNLABELLED, UNVERIFIED
from layer_platform_tests.classification.oof_fixtures import cohort_items, untrained_ensemble


def test_no_scan_is_explained_by_a_member_that_trained_on_it() -> None:
    split, items = cohort_items()
    scheme = SplitScheme.from_tag(split.scheme())
    ensemble = untrained_ensemble(seed=0)
    members = [ensemble.features.branches[k] for k in range(3)]
    seen, test_members = set(), set()
    for item in items:
        explainer = choose_explainer(ensemble, scheme, item.subject_id, item.label)
        seen.add(explainer.explained_by)
        used = [k for k, m in enumerate(members) if m in list(explainer.model.modules())]
        trained_on_it = [k for k in range(3) if item.scan_id in split.training_ids(k)]
        assert not set(used) & set(trained_on_it)
        # one network per labelled scan, the member its reference is built for
        assert used == [explainer.member] and explainer.model is not ensemble
        if item.scan_id in split.test_ids():
            assert explainer.explained_by == HELD_OUT
            assert explainer.member == scheme.member_for(item.subject_id)
            test_members.add(explainer.member)
        else:
            assert explainer.explained_by == OUT_OF_FOLD
            assert explainer.member == scheme.assign(item.subject_id)
    assert seen == {HELD_OUT, OUT_OF_FOLD}
    assert len(test_members) > 1, "test scans spread over the members"


def test_unlabelled_refit_and_unrecorded_split_cases() -> None:
    split, items = cohort_items()
    scheme = SplitScheme.from_tag(split.scheme())
    ensemble = untrained_ensemble(seed=0)
    development = next(i for i in items if i.scan_id in split.development_ids())
    assert choose_explainer(ensemble, scheme, "new", None).explained_by == UNLABELLED
    assert choose_explainer(ensemble, None, "x", "MP").explained_by == UNVERIFIED
    refit = ensemble.member(0)  # a single network trained on every development scan
    assert choose_explainer(refit, scheme, development.subject_id, development.label) is None
    test = next(i for i in items if i.scan_id in split.test_ids())
    held = choose_explainer(refit, scheme, test.subject_id, test.label)
    assert (held.explained_by, held.model, held.member) == (HELD_OUT, refit, None)
    unlabelled = choose_explainer(ensemble, scheme, test.subject_id, None)
    assert (unlabelled.model, unlabelled.member) == (ensemble, None)
