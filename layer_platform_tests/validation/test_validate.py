"""``layer-platform validate`` on a tiny 3-cohort matrix, one of its cohorts (``--only``) through
the real assets (1-epoch models, smoke attribution settings): what it stores agrees with each
cohort's own ranking, the page is generated from it, and a second call runs nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.modes import INPUT_MODES
from layer_platform.cli import main
from layer_platform.defs.definitions import build_definitions
from layer_platform.orchestration import validation
from layer_platform.orchestration.validation import RESULTS_FILE, run_matrix
from layer_platform.settings import LayerPaths
from layer_platform.validation import Matrix, Scenario, Settings, load_matrix
from layer_platform.validation.outcome import COLUMNS
from layer_platform.warehouse.store import Warehouse

#: The default method only: the matrix's machinery does not depend on the method (the unit
#: tests cover the per-method rates), and each method costs every cohort its attribution.
METHODS = ("layer_ablation",)
#: The pipeline's matching; one cohort is then explained again with the other
#: (``explain_again``, what a matrix of several matchings does to each cohort).
MATCHING, OTHER_MATCHING = "flat", "mean_shift"
#: 8 subjects each; each split salt leaves both classes in every fold's training and validation
#: scans and in the test set, also among the scans with SWE.
TINY = f"""
[settings]
subjects = 8
folds = 2
min_epochs = 1
max_epochs = 1
segmenter_epochs = 1
smoke = true
methods = {list(METHODS)}
reference_matching = ["{MATCHING}"]

[[scenario]]
name = "bmode-deep_fascia"
seed = 3
bmode_driver = "deep_fascia"
swe_driver = "none"

[[scenario]]
name = "swe-muscle"
seed = 4
split_seed = 17
bmode_driver = "none"
swe_driver = "muscle"

[[scenario]]
name = "null"
seed = 5
split_seed = 10
bmode_driver = "none"
swe_driver = "none"
"""
#: The cohort run through the assets: a planted B-mode driver, whose rows hold a mode with it
#: (``bmode``), one it reaches through B-mode (``bmode_swe``) and one with nothing planted
#: (``swe``). The other two cohorts add no path of the matrix's own code (``planted_for``'s unit
#: tests cover an SWE driver), only another cohort's run time.
RUN = ("bmode-deep_fascia",)
PLANTED = {
    "bmode-deep_fascia": {"bmode": "deep_fascia", "swe": "none", "bmode_swe": "deep_fascia"},
    "swe-muscle": {"bmode": "none", "swe": "muscle", "bmode_swe": "muscle"},
    "null": {"bmode": "none", "swe": "none", "bmode_swe": "none"},
}
RANKING = """
    SELECT input_mode, method, list(layer ORDER BY rank)[1] AS top_layer,
           any_value(layer) FILTER (WHERE stands_out) AS standout_layer
    FROM layer_ranking GROUP BY ALL
"""


@pytest.mark.slow(seconds=150)
def test_a_tiny_matrix_runs_through_the_assets_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix_file, out, report = tmp_path / "tiny.toml", tmp_path / "out", tmp_path / "tiny.md"
    matrix_file.write_text(TINY)
    args = ["validate", str(matrix_file), "--out", str(out), "--report", str(report)]
    args += ["--only", *RUN]
    assert main(args) == 0, capsys.readouterr().out
    assert "ran 1, already stored 0, failed 0" in capsys.readouterr().out

    rows = Warehouse(out / RESULTS_FILE).query("SELECT * FROM validation_matrix")
    assert list(rows.columns) == COLUMNS
    keys = ["scenario", "input_mode", "method", "reference_matching"]
    assert sorted(rows[keys].itertuples(index=False, name=None)) == sorted(
        (s, m, method, matching)
        for s in RUN
        for m in INPUT_MODES
        for method in METHODS
        for matching in (MATCHING,)
    )
    for row in rows.itertuples(index=False):
        assert row.planted == PLANTED[row.scenario][row.input_mode]
    for scenario, stored in rows.groupby("scenario"):
        _assert_rows_read_from_the_cohort(stored, out / scenario)
    assert rows["is_default_method"].eq(rows["method"] == "layer_ablation").all()
    assert rows.loc[rows["planted"] == "none", "planted_rank"].isna().all()

    page = report.read_text()
    (produced_by,) = [line for line in page.splitlines() if line.startswith("**Produced by:**")]
    assert "`layer-platform validate" in produced_by
    assert f"--only {' '.join(RUN)}`" in produced_by, "a page of some cohorts says which"
    assert page.count("| bmode-deep_fascia |") == len(INPUT_MODES) * len(METHODS)
    assert "**layer_ablation** (default)" in page

    assert main(args) == 0
    assert "ran 0, already stored 1, failed 0" in capsys.readouterr().out
    again = Warehouse(out / RESULTS_FILE).query("SELECT * FROM validation_matrix")
    pd.testing.assert_frame_equal(
        rows.sort_values(keys, ignore_index=True), again.sort_values(keys, ignore_index=True)
    )

    # the same trained models explained again with the other matching: every scan's saliency
    # is recomputed under it, and the rows are read from the summary it gave
    matrix = load_matrix(matrix_file)
    scenario = matrix.scenarios[0]
    home = out / scenario.name
    rematched = validation.explain_again(LayerPaths.under(home), matrix, scenario, OTHER_MATCHING)
    assert set(rematched["reference_matching"]) == {OTHER_MATCHING}
    assert len(rematched) == len(INPUT_MODES) * len(METHODS)
    _assert_rows_read_from_the_cohort(rematched, home)
    settings = Warehouse(LayerPaths.under(home).warehouse).query(
        "SELECT DISTINCT attribution_settings FROM layer_saliency"
    )["attribution_settings"]
    assert len(settings) == 1 and f"matching={OTHER_MATCHING}" in settings.iloc[0]


def _assert_rows_read_from_the_cohort(stored: pd.DataFrame, home: Path) -> None:
    """The stored rows say what the cohort's own warehouse ranked (its last summary)."""
    own = Warehouse(LayerPaths.under(home).warehouse).query(RANKING)
    merged = stored.merge(own, on=["input_mode", "method"], suffixes=("", "_own"))
    assert len(merged) == len(stored)
    assert (merged["top_layer"] == merged["top_layer_own"]).all()
    assert merged["standout_layer"].fillna("").eq(merged["standout_layer_own"].fillna("")).all()


def test_one_failing_cohort_leaves_the_others_run_and_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix_file = tmp_path / "tiny.toml"
    matrix_file.write_text(TINY)
    matrix = load_matrix(matrix_file)

    def run_scenario(out: Path, matrix: Matrix, scenario: Scenario) -> pd.DataFrame:
        if scenario.name == "swe-muscle":
            raise RuntimeError("stage train_classifiers failed")
        row = dict.fromkeys(COLUMNS)
        row.update(
            matrix=matrix.name,
            scenario=scenario.name,
            fingerprint=matrix.fingerprint(scenario),
            seed=scenario.seed,
            subjects=scenario.subjects,
            input_mode="bmode",
            method="layer_ablation",
            reference_matching="flat",
            is_default_method=True,
            planted="none",
            top_layer="dermis",
            verdict="no layer stands out",
            beats_chance=False,
            correct=True,
            model_version="1",
            seconds=1.0,
            computed_at=pd.Timestamp("2026-01-01"),
        )
        return pd.DataFrame([row])

    monkeypatch.setattr(validation, "run_scenario", run_scenario)
    first = run_matrix(tmp_path / "out", matrix)
    assert (first.ran, list(first.failed)) == (["bmode-deep_fascia", "null"], ["swe-muscle"])
    assert "train_classifiers" in first.failed["swe-muscle"]
    assert sorted(first.rows["scenario"]) == ["bmode-deep_fascia", "null"]
    second = run_matrix(tmp_path / "out", matrix)
    assert (second.ran, second.skipped) == ([], ["bmode-deep_fascia", "null"])
    assert list(second.failed) == ["swe-muscle"]
    with pytest.raises(ValueError, match="no scenario named"):
        run_matrix(tmp_path / "out", matrix, only=["absent"])

    # --stored runs nothing: the stored cohorts are reported, the failed one is pending
    def must_not_run(out: Path, matrix: Matrix, scenario: Scenario) -> pd.DataFrame:
        raise AssertionError(f"{scenario.name} ran")

    monkeypatch.setattr(validation, "run_scenario", must_not_run)
    stored = run_matrix(tmp_path / "out", matrix, stored_only=True)
    assert (stored.ran, stored.pending, list(stored.failed)) == ([], ["swe-muscle"], [])
    assert sorted(stored.rows["scenario"]) == ["bmode-deep_fascia", "null"]
    monkeypatch.setattr(validation, "run_scenario", run_scenario)

    # --reread reads the stored cohorts again (keeping each run's seconds) and runs the rest
    reread: list[tuple[str, float]] = []

    def reread_scenario(out: Path, matrix: Matrix, scenario: Scenario, seconds: float):
        reread.append((scenario.name, seconds))
        return run_scenario(out, matrix, scenario).assign(top_layer="muscle")

    monkeypatch.setattr(validation, "reread_scenario", reread_scenario)
    third = run_matrix(tmp_path / "out", matrix, reread=True)
    assert (third.reread, third.ran, list(third.failed)) == (
        ["bmode-deep_fascia", "null"],
        [],
        ["swe-muscle"],
    )
    assert reread == [("bmode-deep_fascia", 1.0), ("null", 1.0)]
    assert set(third.rows["top_layer"]) == {"muscle"} and len(third.rows) == 2


def test_rereading_needs_one_reference_matching(tmp_path: Path) -> None:
    matrix_file = tmp_path / "tiny.toml"
    matrix_file.write_text(TINY)
    matrix = load_matrix(matrix_file)
    matrix = replace(matrix, settings=Settings(reference_matching=(MATCHING, OTHER_MATCHING)))
    with pytest.raises(ValueError, match="one reference_matching"):
        validation.reread_scenario(tmp_path, matrix, matrix.scenarios[0], 1.0)


def test_a_full_scale_matrix_attributes_with_its_grids_occlusion_bands(tmp_path: Path) -> None:
    """Outside smoke runs a cohort gets the saliency settings of the preset's grid (its
    occlusion bands), with the matrix's methods and matching."""
    matrix_file = tmp_path / "tiny.toml"
    matrix_file.write_text(TINY.replace("smoke = true", "smoke = false"))
    matrix = load_matrix(matrix_file)
    paths = LayerPaths.under(tmp_path / "home")
    bands = {}
    for preset in ("cpu", "gpu"):
        env = {"LAYER_PRESET": preset}
        saliency = validation.matrix_definitions(
            paths, matrix, matrix.scenarios[0], env=env
        ).resources["saliency"]
        expected = build_definitions(env, paths=paths).resources["saliency"]
        assert saliency.occlusion_window == expected.occlusion_window
        assert saliency.methods == list(METHODS) and saliency.reference_matching == MATCHING
        bands[preset] = saliency.occlusion_window
    assert bands["cpu"] != bands["gpu"]


def test_a_matrix_trains_with_its_modality_dropout_and_fingerprints_it(tmp_path: Path) -> None:
    matrix_file = tmp_path / "tiny.toml"
    matrix_file.write_text(TINY.replace("smoke = true", "smoke = true\nmodality_dropout = 0.5"))
    matrix = load_matrix(matrix_file)
    scenario = matrix.scenarios[0]
    paths = LayerPaths.under(tmp_path / "home")
    classifier = validation.matrix_definitions(paths, matrix, scenario).resources["classifier"]
    assert classifier.config().modality_dropout == 0.5
    plain = replace(matrix, settings=replace(matrix.settings, modality_dropout=None))
    assert plain.fingerprint(scenario) != matrix.fingerprint(scenario)
    default = validation.matrix_definitions(paths, plain, scenario).resources["classifier"]
    assert default.config().modality_dropout == ClassifierConfig().modality_dropout


def test_a_cohort_that_did_not_finish_starts_again_from_an_empty_home(tmp_path: Path) -> None:
    """An interrupted attempt leaves a home with the same settings but no stored rows: the
    next attempt must not resume on its partly trained registry or half-written warehouse."""
    matrix_file = tmp_path / "tiny.toml"
    matrix_file.write_text(TINY)
    matrix = load_matrix(matrix_file)
    scenario = matrix.scenarios[0]
    first = validation._cohort_home(tmp_path, matrix, scenario)
    leftover = first.warehouse.parent / "half-written"
    leftover.write_text("")
    again = validation._cohort_home(tmp_path, matrix, scenario)
    assert not leftover.exists() and again.warehouse.parent.is_dir()
    marker = json.loads((tmp_path / scenario.name / validation.MARKER).read_text())
    assert marker == {"fingerprint": matrix.fingerprint(scenario)}
