"""The verdict's boundary sensitivity: gate 4 again on the eroded and on the dilated scores."""

from __future__ import annotations

import pandas as pd

from layer_platform.saliency_names import BOUNDARIES
from layer_platform.statistics import RankingSpec, friedman_rows, ranking_rows
from layer_platform_tests.saliency.test_ranking import (
    N_BOOT,
    passing,
    saliency_frame,
    with_modalities,
)

SPEC = RankingSpec("layer_ablation", passing())


def with_boundaries(frame: pd.DataFrame, **sources: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each boundary's score columns taken from ``sources[boundary]`` (a frame
    of the same rows, e.g. another ``saliency_frame`` with the same seed), else its own."""
    columns = {}
    for boundary in BOUNDARIES:
        source = sources.get(boundary, frame)
        for score in ("mean_saliency", "ablation_delta"):
            columns[f"{score}_{boundary}"] = source[score].to_numpy()
    return frame.assign(**columns)


def top_rows(ranking: pd.DataFrame) -> pd.DataFrame:
    return ranking[ranking["rank"] == 1].set_index("method")


def test_a_finding_that_does_not_hinge_on_the_boundaries_survives():
    frame = with_boundaries(saliency_frame("deep_fascia"))
    top = top_rows(ranking_rows(frame, SPEC, n_boot=N_BOOT))
    assert top["stands_out"].all()
    assert (top["boundary_sensitivity"] == "survives").all()
    assert not top["verdict"].str.contains("boundary").any()


def test_a_top_layer_that_wins_only_on_its_boundary_voxels_does_not_survive_erosion():
    """The same draws without deep fascia's lift once its boundary voxels are eroded away (the
    lift sat on them): the layer still stands out as segmented, and the verdict says the
    finding hinges on the boundaries."""
    frame = with_boundaries(saliency_frame("deep_fascia"), eroded=saliency_frame(None))
    ranking = ranking_rows(frame, SPEC, n_boot=N_BOOT)
    top = top_rows(ranking)
    assert top["stands_out"].all() and (top["layer"] == "deep_fascia").all()
    assert (top["boundary_sensitivity"] == "fails under erosion").all()
    assert top["verdict"].str.contains("boundary sensitivity: fails under erosion").all()
    assert top["verdict"].str.contains(r"\(erosion: no layer stands out\)").all()
    # every row of the method repeats the verdict and its boundary sensitivity
    assert ranking.groupby("method")["boundary_sensitivity"].nunique().eq(1).all()
    friedman = friedman_rows(frame, evidence=passing())
    assert friedman[friedman["subgroup"] == "all"]["verdict"].str.contains("erosion").all()


def test_another_layer_standing_out_under_dilation_is_named():
    frame = with_boundaries(saliency_frame("deep_fascia"), dilated=saliency_frame("muscle"))
    top = top_rows(ranking_rows(frame, SPEC, n_boot=N_BOOT))
    assert (top["boundary_sensitivity"] == "fails under dilation").all()
    assert top["verdict"].str.contains(r"\(dilation: muscle stands out\)").all()


def test_no_claim_is_not_applicable_and_missing_scores_are_not_computed():
    null = with_boundaries(saliency_frame(None, seed=3))
    assert (
        ranking_rows(null, SPEC, n_boot=N_BOOT)["boundary_sensitivity"] == "not applicable"
    ).all()
    older = ranking_rows(saliency_frame("deep_fascia"), SPEC, n_boot=N_BOOT)  # no such columns
    assert older["stands_out"].any()
    assert (older["boundary_sensitivity"] == "not computed").all()


def test_a_finding_in_one_modality_is_checked_on_that_modality_s_boundaries():
    """A B-mode driver that stands out in its own channel only: its boundary sensitivity reads
    each modality's eroded and dilated deltas; without them (rows from before) it is not
    computed, rather than judged on the whole-layer deltas the finding did not rest on."""
    modes = ("bmode_swe",)
    spec = RankingSpec("layer_ablation", passing(modes=modes))
    frame = with_modalities(saliency_frame("deep_fat", n_subjects=24, modes=modes), seed=1)
    no_channel_boundaries = with_boundaries(frame)
    top = top_rows(ranking_rows(no_channel_boundaries, spec, n_boot=N_BOOT))
    assert bool(top.loc["layer_ablation", "stands_out"])
    assert top.loc["layer_ablation", "boundary_sensitivity"] == "not computed"
    channels = {
        f"{column}_{boundary}": frame[column].to_numpy()
        for column in ("ablation_delta_bmode", "ablation_delta_swe")
        for boundary in BOUNDARIES
    }
    top = top_rows(ranking_rows(no_channel_boundaries.assign(**channels), spec, n_boot=N_BOOT))
    assert top.loc["layer_ablation", "boundary_sensitivity"] == "survives"
    lost = {**channels, "ablation_delta_bmode_dilated": frame["ablation_delta_swe"].to_numpy()}
    top = top_rows(ranking_rows(no_channel_boundaries.assign(**lost), spec, n_boot=N_BOOT))
    assert top.loc["layer_ablation", "boundary_sensitivity"] == "fails under dilation"


def test_the_boundary_families_hold_the_same_methods_as_the_verdicts():
    """Ten subjects and five methods, two of them claimable: the finding (Holm over 42
    candidates) survives boundaries that change nothing, which a family of every method (105
    candidates: 105/1024 > 0.05) would have read as failing."""
    methods = ("integrated_gradients", "saliency", "gradcam", "occlusion", "layer_ablation")
    frame = with_boundaries(saliency_frame("deep_fascia", n_subjects=10, methods=methods))
    top = top_rows(ranking_rows(frame, SPEC, n_boot=N_BOOT))
    claimable = ["integrated_gradients", "layer_ablation"]
    assert top.loc[claimable, "stands_out"].all()
    assert (top.loc[claimable, "boundary_sensitivity"] == "survives").all()
