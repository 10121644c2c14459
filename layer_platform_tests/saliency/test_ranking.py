"""Cohort tables on synthetic layer_saliency frames with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layer_platform.labels import TISSUE_LAYERS
from layer_platform.statistics import (
    NO_STANDOUT,
    SUBGROUPS,
    TOO_FEW_SUBJECTS,
    Evidence,
    RankingSpec,
    comparison_rows,
    driver_recovery_rows,
    format_ranking,
    friedman_rows,
    planted_drivers,
    ranking_rows,
    results_markdown,
    sample_scans,
    summary_rows,
)
from layer_platform.statistics.ranking import subgroup
from layer_platform.statistics.skill import SkillTest

KEYS = [layer.key for layer in TISSUE_LAYERS]
N_BOOT = 300
SKILLED = SkillTest(auc=0.9, p_value=0.001, n_subjects=16, n_permutations=2000)
AT_CHANCE = SkillTest(auc=0.64, p_value=0.21, n_subjects=16, n_permutations=2000)


def passing(
    modes=("bmode", "swe", "bmode_swe"),
    methods=("integrated_gradients", "layer_ablation"),
    **changes,
) -> Evidence:
    """Evidence on which every gate outside the saliency rows passes, but for ``changes``."""
    checks = {f"{mode}/{method}": True for mode in modes for method in methods}
    found = {"skill": dict.fromkeys(modes, SKILLED), "model_randomization": checks}
    return Evidence(**{**found, **changes})


def saliency_frame(
    top: str | None,
    *,
    n_subjects: int = 16,
    modes: tuple[str, ...] = ("bmode",),
    methods: tuple[str, ...] = ("integrated_gradients", "layer_ablation"),
    seed: int = 0,
    second: str | None = None,
) -> pd.DataFrame:
    """Two scans per subject (half MP); every layer ~0.3 +- 0.1, ``top`` and ``second`` ~0.8
    (if any)."""
    rng = np.random.default_rng(seed)
    records = []
    for subject in range(n_subjects):
        label = "MP" if subject % 2 == 0 else "control"
        for side in ("L", "R"):
            scan = f"S{subject:02d}-{side}"
            for mode in modes:
                for method in methods:
                    values = rng.normal(0.3, 0.1, size=6)
                    for lifted in (top, second):
                        if lifted is not None:
                            values[KEYS.index(lifted)] += 0.5
                    shares = np.abs(values) / np.abs(values).sum()
                    # a max-pooling head: all non-muscle tissue replaced loses the largest
                    joint = {key: values[:5].max() for key in KEYS[:5]} | {"muscle": values[5]}
                    for layer, value, share in zip(KEYS, values, shares, strict=True):
                        ablation = method == "layer_ablation"
                        records.append(
                            {
                                "scan_id": scan,
                                "subject_id": f"S{subject:02d}",
                                "label": label,
                                "input_mode": mode,
                                "method": method,
                                "layer": layer,
                                "mean_saliency": np.nan if ablation else value,
                                "saliency_share": np.nan if ablation else share,
                                "enrichment": np.nan if ablation else share * 6,
                                "volume_fraction": 1 / 6,
                                "ablation_delta": value if ablation else np.nan,
                                "joint_ablation_delta": joint[layer] if ablation else np.nan,
                                "correct": label == "MP" and subject % 4 == 0,
                                "explained_by": "held_out" if subject < 4 else "out_of_fold",
                            }
                        )
    return pd.DataFrame(records)


def test_ranking_finds_the_known_top_layer_and_says_it_stands_out():
    ranking = ranking_rows(
        saliency_frame("deep_fascia"),
        RankingSpec("integrated_gradients", passing()),
        n_boot=N_BOOT,
    )
    assert list(ranking.columns[:9]) == [
        "input_mode",
        "method",
        "is_default_method",
        "layer",
        "rank",
        "score",
        "ci_low",
        "ci_high",
        "n_subjects",
    ]
    for method, rows in ranking.groupby("method"):
        assert len(rows) == 6 and sorted(rows["rank"]) == [1, 2, 3, 4, 5, 6]
        top = rows[rows["rank"] == 1].iloc[0]
        assert top["layer"] == "deep_fascia"
        assert top["score"] == pytest.approx(0.8, abs=0.05)
        assert top["ci_low"] < top["score"] < top["ci_high"]
        assert top["n_subjects"] == 16
        assert rows["stands_out"].sum() == 1 and bool(top["stands_out"])
        assert top["verdict"].startswith("deep_fascia stands out")
        assert "Holm-adjusted" in top["verdict"]
        assert "subject-permutation p = 0.001" in top["verdict"]
        assert top["verdict"].endswith("data randomization not run"), "says what was not run"
        assert bool(top["is_default_method"]) == (method == "integrated_gradients")
        assert rows["p_rank1"].sum() == pytest.approx(1.0)
        assert top["p_rank1"] > 0.99


def test_null_cohort_says_no_layer_stands_out():
    frame = saliency_frame(None, seed=3)
    ranking = ranking_rows(frame, RankingSpec("integrated_gradients", passing()), n_boot=N_BOOT)
    assert not ranking["stands_out"].any()
    assert ranking["verdict"].str.contains("does not beat every other layer").all()
    for _, rows in ranking.groupby(["input_mode", "method"]):
        assert rows["p_rank1"].sum() == pytest.approx(1.0)
    friedman = friedman_rows(frame, evidence=passing())
    assert friedman["verdict"].str.startswith(NO_STANDOUT).all()
    assert friedman["standout_layer"].isna().all()
    assert (friedman["holm_p"] >= 0.05).all()


def test_a_model_at_chance_gets_no_finding_however_clear_its_attribution():
    """A clear top layer is not a finding when the classifier does not predict pain."""
    frame = saliency_frame("muscle", modes=("bmode", "swe"))
    evidence = passing(skill={"bmode": SKILLED, "swe": AT_CHANCE})
    ranking = ranking_rows(frame, RankingSpec("integrated_gradients", evidence), n_boot=N_BOOT)
    swe, bmode = ranking[ranking["input_mode"] == "swe"], ranking[ranking["input_mode"] == "bmode"]
    assert not swe["stands_out"].any()
    assert set(swe["verdict"]) == {
        "no layer stands out: the classifier does not beat chance (out-of-fold AUC 0.64,"
        " subject-permutation p = 0.21 (2000 permutations, 16 subjects))"
    }
    assert (swe[swe["rank"] == 1]["layer"] == "muscle").all(), "the ranking itself is kept"
    assert bmode["stands_out"].sum() == 2, "a mode that beats chance keeps its finding"
    friedman = friedman_rows(frame, evidence=evidence)
    swe_tests = friedman[friedman["input_mode"] == "swe"]
    assert swe_tests["standout_layer"].isna().all()
    assert (swe_tests[swe_tests["subgroup"] == "all"]["p_value"] < 1e-4).all(), "test kept"
    untested = passing(skill={"bmode": SKILLED})
    swe = ranking_rows(frame, RankingSpec("saliency", untested), n_boot=N_BOOT)
    swe = swe[swe["input_mode"] == "swe"]
    assert not swe["stands_out"].any()
    assert swe["verdict"].str.contains("out-of-fold predictions are not recorded").all()


def test_a_random_model_that_still_ranks_a_layer_gets_no_finding():
    """The model-randomization gate: a failed or missing check stops the finding; the
    data-randomization check stops it when it ran and failed."""
    frame = saliency_frame("deep_fat")
    evidence = passing(model_randomization={"bmode/integrated_gradients": False})
    ranking = ranking_rows(frame, RankingSpec("integrated_gradients", evidence), n_boot=N_BOOT)
    assert not ranking["stands_out"].any()
    by_method = ranking.groupby("method")["verdict"].first()
    assert by_method["integrated_gradients"] == (
        "no layer stands out: integrated_gradients fails the model-randomization check"
        " (its layer profile survives random weights)"
    )
    assert by_method["layer_ablation"] == (
        "no layer stands out: the model-randomization check was not run for layer_ablation"
        " (or on too few scans to decide)"
    )
    ran = passing(data_randomization={"bmode/layer_ablation": False})
    ranking = ranking_rows(frame, RankingSpec("integrated_gradients", ran), n_boot=N_BOOT)
    by_method = ranking.groupby("method")["verdict"].first()
    assert by_method["layer_ablation"].endswith("(data-randomization check)")
    assert by_method["integrated_gradients"].startswith("deep_fat stands out")


def test_holm_over_methods_needs_more_subjects():
    """Ten subjects with an unmistakable top layer: each of its one-sided paired tests has the
    exact p = 1/1024, and so has its claim (the largest of its five); the family is 21
    candidate claims (six layers, 15 pairs) of every method that can claim, so Holm over 2
    methods gives 42/1024 = 0.041 < 0.05 (a finding), over 5 methods 105/1024 = 0.1 (none)."""
    methods = ("integrated_gradients", "saliency", "gradcam", "occlusion", "layer_ablation")
    two = saliency_frame("dermis", n_subjects=10)
    found = ranking_rows(two, RankingSpec("saliency", passing()), n_boot=N_BOOT)
    assert found["stands_out"].sum() == 2
    assert found["verdict"].str.contains("p <= 0.041 < 0.05 over 42 candidate claims").all()
    five = saliency_frame("dermis", n_subjects=10, methods=methods)
    none = ranking_rows(five, RankingSpec("saliency", passing(methods=methods)), n_boot=N_BOOT)
    assert not none["stands_out"].any()
    assert none["verdict"].str.contains("p = 0.1 >= 0.05 over 105 candidate claims").all()


def test_two_layers_that_beat_the_rest_stand_out_together():
    """Two lifted layers, neither above the other: the top one alone does not stand out, the
    two together do, and both rows say so."""
    frame = saliency_frame("deep_fascia", second="superficial_fascia", n_subjects=12)
    ranking = ranking_rows(frame, RankingSpec("layer_ablation", passing()), n_boot=N_BOOT)
    for method, rows in ranking.groupby("method"):
        standing = set(rows.loc[rows["stands_out"], "layer"])
        assert standing == {"deep_fascia", "superficial_fascia"}, method
        top = rows.loc[rows["rank"] == 1, "layer"].item()
        verdict = rows["verdict"].iloc[0]
        assert verdict.startswith(f"{top} and ") and "stand out together" in verdict
        assert f"{top} alone does not" in verdict


def test_a_method_a_gate_blocks_stays_out_of_the_family():
    """Five methods, two of them checked for model randomization: the other three make no
    claim, so their tests need no correction and the two checked ones stand out as they would
    alone (Holm over 42 candidate claims, not 105)."""
    methods = ("integrated_gradients", "saliency", "gradcam", "occlusion", "layer_ablation")
    five = saliency_frame("dermis", n_subjects=10, methods=methods)
    ranking = ranking_rows(five, RankingSpec("saliency", passing()), n_boot=N_BOOT)
    verdicts = ranking.groupby("method")["verdict"].first()
    standing = ranking.loc[ranking["stands_out"], "method"]
    assert set(standing) == {"integrated_gradients", "layer_ablation"}
    assert (
        verdicts[["integrated_gradients", "layer_ablation"]]
        .str.contains("over 42 candidate claims of 2 method")
        .all()
    )
    assert (
        verdicts[["saliency", "gradcam", "occlusion"]]
        .str.contains("model-randomization check was not run")
        .all()
    )


def test_too_few_subjects_get_an_explicit_verdict():
    ranking = ranking_rows(
        saliency_frame("muscle", n_subjects=1),
        RankingSpec("integrated_gradients", passing()),
    )
    assert set(ranking["verdict"]) == {TOO_FEW_SUBJECTS}
    assert not ranking["stands_out"].any()


def test_summary_covers_every_subgroup_metric_and_layer():
    frame = saliency_frame("deep_fat", modes=("bmode", "swe"), n_subjects=18)
    unlabelled = frame["subject_id"].isin(["S16", "S17"])  # their own subgroup, not in "all"
    frame.loc[unlabelled, ["explained_by", "label", "correct"]] = ["unlabelled", None, False]
    summary = summary_rows(frame, n_boot=N_BOOT)
    assert set(summary["subgroup"]) == set(SUBGROUPS)
    ig = summary[summary["method"] == "integrated_gradients"]
    assert set(ig["metric"]) == {"mean_saliency", "saliency_share", "enrichment"}
    assert set(summary[summary["method"] == "layer_ablation"]["metric"]) == {"ablation_delta"}
    block = ig[(ig["input_mode"] == "swe") & (ig["subgroup"] == "all")]
    assert len(block) == 3 * 6
    assert (block["n_subjects"] == 16).all() and (block["n_scans"] == 32).all()
    mp = ig[(ig["subgroup"] == "MP") & (ig["metric"] == "mean_saliency")]
    assert (mp["n_subjects"] == 8).all()
    correct = ig[(ig["subgroup"] == "MP_correct") & (ig["metric"] == "mean_saliency")]
    assert (correct["n_subjects"] == 4).all()
    top = ig[(ig["metric"] == "mean_saliency") & (ig["rank"] == 1)]
    assert set(top["layer"]) == {"deep_fat"}


def test_non_muscle_vs_muscle_is_paired_by_subject():
    comparison = comparison_rows(saliency_frame("muscle"), n_boot=N_BOOT)
    ig = comparison[
        (comparison["method"] == "integrated_gradients") & (comparison["subgroup"] == "all")
    ].iloc[0]
    assert ig["metric"] == "mean_saliency" and ig["n_subjects"] == 16
    # equal layer volumes: non-muscle voxels ~0.3, muscle ~0.8
    assert ig["non_muscle_mean"] == pytest.approx(0.3, abs=0.05)
    assert ig["muscle_mean"] == pytest.approx(0.8, abs=0.05)
    assert ig["mean_difference"] == pytest.approx(-0.5, abs=0.1)
    assert ig["ci_low"] < ig["mean_difference"] < ig["ci_high"]
    assert ig["p_value"] < 0.01


def test_ablation_compares_the_joint_drops_not_the_summed_layers():
    """Non-muscle side: the joint drop (here the largest of the five layers, ~0.3 + a max),
    not the five single-layer drops summed (~1.5); muscle side: muscle's drop (~0.8)."""
    frame = saliency_frame("muscle")
    comparison = comparison_rows(frame, n_boot=N_BOOT)
    ablation = comparison[comparison["method"] == "layer_ablation"]
    assert set(ablation["metric"]) == {"joint_ablation_delta"}
    row = ablation[ablation["subgroup"] == "all"].iloc[0]
    rows = frame[frame["method"] == "layer_ablation"]
    scans = rows.groupby(["subject_id", "scan_id"])
    non_muscle = scans.apply(lambda t: t[t["layer"] != "muscle"]["ablation_delta"].max())
    assert row["non_muscle_mean"] == pytest.approx(non_muscle.groupby(level=0).mean().mean())
    assert row["non_muscle_mean"] < 1.0, "the summed single-layer drops would be ~1.5"
    assert row["muscle_mean"] == pytest.approx(0.8, abs=0.05)
    before = comparison_rows(frame.drop(columns="joint_ablation_delta"), n_boot=N_BOOT)
    assert "layer_ablation" not in set(before["method"]), "rows without joint drops: no row"
    assert len(before) == len(comparison) - len(ablation)


def test_driver_recovery_per_mode_and_modality():
    frame = saliency_frame("deep_fascia", modes=("bmode", "swe", "bmode_swe"))
    ranking = ranking_rows(frame, RankingSpec("integrated_gradients", passing()), n_boot=N_BOOT)
    drivers = planted_drivers("deep_fascia", "muscle")
    recovery = driver_recovery_rows(ranking, drivers, cohort="sim")
    ig = recovery[recovery["method"] == "integrated_gradients"].set_index(
        ["input_mode", "modality"]
    )
    assert ig.loc[("bmode", "bmode"), "rank_of_planted_layer"] == 1
    assert bool(ig.loc[("bmode", "bmode"), "recovered"])
    assert ig.loc[("swe", "swe"), "planted_layer"] == "muscle"
    assert not bool(ig.loc[("swe", "swe"), "recovered"])
    # bmode_swe sees two planted layers: the top two ranks count as recovered
    assert set(ig.loc["bmode_swe"].index) == {"bmode", "swe"}
    assert bool(ig.loc[("bmode_swe", "bmode"), "recovered"])
    assert len(recovery) == 2 * (1 + 1 + 2)


def test_a_two_layer_driver_gets_a_row_per_planted_layer_and_the_top_two_count():
    frame = saliency_frame("deep_fascia", modes=("bmode",))
    ranking = ranking_rows(frame, RankingSpec("integrated_gradients", passing()), n_boot=N_BOOT)
    ig = ranking[ranking["method"] == "integrated_gradients"].set_index("layer")["rank"]
    second = ig.index[ig == 2][0]
    last = ig.index[ig == 6][0]
    drivers = planted_drivers("deep_fascia", None, second)
    assert drivers == {"bmode": ("deep_fascia", second), "swe": ()}
    rows = driver_recovery_rows(ranking, drivers, cohort="two")
    rows = rows[rows["method"] == "integrated_gradients"].set_index("planted_layer")
    assert set(rows.index) == {"deep_fascia", second}
    assert rows["recovered"].all(), "ranks 1 and 2 of two planted layers"
    far = driver_recovery_rows(ranking, planted_drivers("deep_fascia", None, last), cohort="x")
    far = far[far["method"] == "integrated_gradients"].set_index("planted_layer")
    assert not bool(far.loc[last, "recovered"]) and bool(far.loc["deep_fascia", "recovered"])


def test_driver_recovery_without_a_planted_driver_asks_for_no_standout():
    null = ranking_rows(
        saliency_frame(None, seed=3), RankingSpec("integrated_gradients", passing())
    )
    recovery = driver_recovery_rows(null, planted_drivers(None, None), cohort="null")
    assert (recovery["planted_layer"] == "none").all()
    assert recovery["rank_of_planted_layer"].isna().all()
    assert recovery["recovered"].all()
    found = ranking_rows(saliency_frame("dermis"), RankingSpec("integrated_gradients", passing()))
    assert not driver_recovery_rows(found, planted_drivers(None, None), cohort="x")[
        "recovered"
    ].any()


def test_text_outputs_name_the_top_layer_and_the_verdict():
    frame = saliency_frame("deep_fascia")
    ranking = ranking_rows(frame, RankingSpec("integrated_gradients", passing()), n_boot=N_BOOT)
    comparison = comparison_rows(frame, n_boot=N_BOOT)
    markdown = results_markdown(ranking, comparison, headers={"bmode": "v1"})
    assert "### bmode — v1" in markdown
    assert "| deep_fascia | **0.7" in markdown
    assert "integrated_gradients (default)" in markdown
    assert "Wilcoxon p" in markdown
    text = format_ranking(ranking, headers={"bmode": "v1"})
    assert "integrated_gradients*" in text
    assert [line.split()[:2] for line in text.splitlines() if line.startswith("  1 ")] == [
        ["1", "deep_fascia"]
    ]
    assert "stands out" in text
    assert "no layer ranking yet" in format_ranking(ranking.iloc[0:0])


def test_sample_scans_takes_distinct_subjects_mp_first():
    scans = sample_scans(saliency_frame(None, n_subjects=6), 4)
    assert len(scans) == 4
    assert len({s.split("-")[0] for s in scans}) == 4
    assert scans[:3] == ["S00-L", "S02-L", "S04-L"]


def test_headline_subgroups_read_labelled_out_of_sample_rows_only():
    """#16: in-sample (NULL, ``unverified``) and unlabelled rows never enter ``all``."""
    frame = saliency_frame("muscle", n_subjects=8)
    frame.loc[frame["subject_id"] == "S05", "explained_by"] = None
    frame.loc[frame["subject_id"] == "S06", "explained_by"] = "unverified"
    unlabelled = frame["subject_id"] == "S07"
    frame.loc[unlabelled, ["explained_by", "label"]] = ["unlabelled", None]
    headline = set(subgroup(frame, "all")["subject_id"])
    assert headline == {f"S{s:02d}" for s in range(5)}
    assert set(subgroup(frame, "control")["subject_id"]) == {"S01", "S03"}
    assert set(subgroup(frame, "unlabelled")["subject_id"]) == {"S07"}


def test_per_modality_ablation_is_summarized_but_never_ranked():
    """``bmode_swe`` ablation rows whose evidence is all SWE: ``layer_summary`` gains one block
    per modality (B-mode 0, SWE the full drop); the ranking is that of the whole-layer deltas,
    and each modality's 21 candidate claims join the verdict's Holm family (42 -> 84)."""
    frame = saliency_frame("deep_fascia", modes=("bmode_swe",))
    ablation = frame["method"] == "layer_ablation"
    with_channels = frame.assign(
        ablation_delta_bmode=np.where(ablation, 0.0, np.nan),
        ablation_delta_swe=frame["ablation_delta"],
    )
    summary = summary_rows(with_channels, n_boot=N_BOOT)
    found = summary[(summary["subgroup"] == "all") & (summary["method"] == "layer_ablation")]
    by_metric = found.set_index(["metric", "layer"])["mean"]
    assert set(found["metric"]) == {"ablation_delta", "ablation_delta_bmode", "ablation_delta_swe"}
    assert (by_metric.loc["ablation_delta_bmode"] == 0.0).all()
    swe, both = by_metric.loc["ablation_delta_swe"], by_metric.loc["ablation_delta"]
    assert swe.to_dict() == pytest.approx(both.to_dict())
    spec = RankingSpec("layer_ablation", passing(modes=("bmode_swe",)))
    channels = ranking_rows(with_channels, spec, n_boot=N_BOOT)
    whole = ranking_rows(frame, spec, n_boot=N_BOOT)
    ranks = ["input_mode", "method", "layer", "rank", "score", "stands_out"]
    pd.testing.assert_frame_equal(channels[ranks], whole[ranks])
    assert whole["verdict"].str.contains("over 42 candidate claims").all()
    assert channels["verdict"].str.contains("over 84 candidate claims").all()


def with_modalities(frame: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """``frame``'s ablation rows as a two-channel input: the B-mode channel's delta is the
    row's (with its top layer, if any), the SWE channel's an unrelated effect of either sign
    per subject and layer (sd 1), and the whole-layer delta their sum."""
    rng = np.random.default_rng(seed)
    ablation = frame["method"] == "layer_ablation"
    swe_effect = {
        (s, layer): rng.normal(0.0, 1.0) for s in frame["subject_id"].unique() for layer in KEYS
    }
    swe = frame.apply(lambda r: swe_effect[(r["subject_id"], r["layer"])], axis=1)
    bmode = frame["ablation_delta"]
    return frame.assign(
        ablation_delta_bmode=np.where(ablation, bmode, np.nan),
        ablation_delta_swe=np.where(ablation, swe, np.nan),
        ablation_delta=np.where(ablation, bmode + swe, np.nan),
    )


def test_a_driver_hidden_by_the_other_modality_stands_out_in_its_own_channel():
    """The SWE channel's unrelated effect hides the B-mode driver from the whole-layer tests;
    the B-mode channel's deltas show it, and the verdict says where. Without the per-modality
    columns the same whole-layer deltas give no finding."""
    modes = ("bmode_swe",)
    frame = with_modalities(saliency_frame("deep_fat", n_subjects=24, modes=modes), seed=1)
    spec = RankingSpec("layer_ablation", passing(modes=modes))
    ablation = ranking_rows(frame, spec, n_boot=N_BOOT).query("method == 'layer_ablation'")
    top = ablation[ablation["rank"] == 1].iloc[0]
    assert top["layer"] == "deep_fat" and bool(top["stands_out"])
    assert "above every other layer when only its bmode channel is ablated" in top["verdict"]
    whole_only = frame.drop(columns=["ablation_delta_bmode", "ablation_delta_swe"])
    without = ranking_rows(whole_only, spec, n_boot=N_BOOT).query("method == 'layer_ablation'")
    assert without[without["rank"] == 1]["layer"].item() == "deep_fat"
    assert not without["stands_out"].any()
    assert without["verdict"].str.contains("deep_fat does not beat every other layer").all()


def test_modality_views_of_a_null_add_tests_not_findings():
    """No driver in either channel: nothing stands out, and the family counts every view."""
    modes = ("bmode_swe",)
    null = with_modalities(saliency_frame(None, n_subjects=24, modes=modes, seed=3), seed=2)
    spec = RankingSpec("layer_ablation", passing(modes=modes))
    ranking = ranking_rows(null, spec, n_boot=N_BOOT)
    assert not ranking["stands_out"].any()
    ablation = ranking[ranking["method"] == "layer_ablation"]
    assert ablation["verdict"].str.contains("over 84 candidate claims of 2 method").all()
