"""Validation matrices: reading the file, and the rule that says whether a cohort's outcome is
right (unit tests; ``test_validate.py`` runs a tiny matrix through the assets)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform.validation import Scenario, load_matrix, outcome_rows, rates
from layer_platform.validation.feasibility import split_refusal
from layer_platform.validation.matrix import Matrix, Settings
from layer_platform.validation.outcome import _correct, planted_for
from layer_platform.warehouse.store import Warehouse

MATRIX = """
[settings]
subjects = 30
folds = 3
methods = ["integrated_gradients", "layer_ablation"]

[[scenario]]
name = "bmode-deep_fat"
seed = 51
bmode_driver = "deep_fat"
swe_driver = "none"

[[scenario]]
name = "null"
seed = 52
subjects = 32
bmode_driver = "none"
swe_driver = "none"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


def test_settings_apply_to_every_scenario_unless_it_overrides_them(tmp_path: Path) -> None:
    matrix = load_matrix(write(tmp_path, MATRIX))
    first, null = matrix.scenarios
    assert (first.subjects, first.folds, null.subjects, null.folds) == (30, 3, 32, 3)
    assert first.planted == {"bmode": ("deep_fat",), "swe": ()}
    assert null.planted == {"bmode": (), "swe": ()} and null.simulation().bmode_driver is None
    assert matrix.settings.methods == ("integrated_gradients", "layer_ablation")
    assert matrix.name == "m"


def test_the_fingerprint_follows_what_decides_a_result(tmp_path: Path) -> None:
    matrix = load_matrix(write(tmp_path, MATRIX))
    first = matrix.scenarios[0]
    again = load_matrix(write(tmp_path, MATRIX))
    assert matrix.fingerprint(first) == again.fingerprint(again.scenarios[0])
    moved = load_matrix(write(tmp_path, MATRIX.replace("seed = 51", "seed = 53")))
    assert matrix.fingerprint(first) != moved.fingerprint(moved.scenarios[0])
    flat = load_matrix(write(tmp_path, MATRIX.replace("folds = 3", "folds = 3\nsmoke = true")))
    assert matrix.fingerprint(first) != flat.fingerprint(flat.scenarios[0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("seed = 51", "seed = 51\ncolour = 1"), "scenario 'bmode-deep_fat': unknown keys"),
        (('bmode_driver = "deep_fat"', 'bmode_driver = "fat"'), "scenario 'bmode-deep_fat'"),
        (('name = "null"', 'name = "bmode-deep_fat"'), "unique"),
        (("folds = 3", "folds = 1"), "folds must be >= 2"),
        (("folds = 3", "fold = 3"), "unknown [settings] keys ['fold']"),
        (('name = "null"', 'name = "../x"'), "a name is a folder name"),
        (("[settings]", "[settings\n"), "not valid TOML"),
    ],
)
def test_a_bad_matrix_names_what_is_wrong(tmp_path: Path, change: tuple, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        load_matrix(write(tmp_path, MATRIX.replace(*change)))
    assert message in str(raised.value)


def test_simulator_scenario_keys_reach_the_cohort_and_its_fingerprint(tmp_path: Path) -> None:
    text = MATRIX.replace("folds = 3", "folds = 3\nsite_confounding = 0.5").replace(
        'bmode_driver = "deep_fat"',
        'bmode_driver = "deep_fat"\nbmode_driver2 = "superficial_fascia"\nbmode_spill_mm = 1.5',
    )
    matrix = load_matrix(write(tmp_path, text))
    first, null = matrix.scenarios
    config = first.simulation()
    assert (config.bmode_driver2, config.bmode_spill_mm) == (Layer.SUPERFICIAL_FASCIA, 1.5)
    assert config.site_confounding == null.simulation().site_confounding == 0.5
    assert null.planted == {"bmode": (), "swe": ()}, "a confounded cohort with no driver: null"
    assert planted_for(first, "bmode") == ["deep_fat", "superficial_fascia"]
    plain = load_matrix(write(tmp_path, MATRIX))
    assert matrix.fingerprint(null) != plain.fingerprint(plain.scenarios[1])
    with pytest.raises(ValueError, match="scenario 'null'"):
        load_matrix(
            write(tmp_path, text.replace("seed = 52", 'seed = 52\nbmode_driver2 = "muscle"'))
        )


def test_annotated_fraction_reaches_the_cohort_and_its_fingerprint(tmp_path: Path) -> None:
    """Realistic segmentations: most scans unannotated, explained in the platform's own."""
    text = MATRIX.replace("folds = 3", "folds = 3\nannotated_fraction = 0.1")
    matrix = load_matrix(write(tmp_path, text))
    assert all(s.simulation().annotated_fraction == 0.1 for s in matrix.scenarios)
    plain = load_matrix(write(tmp_path, MATRIX))
    assert plain.scenarios[0].simulation().annotated_fraction == 0.4
    assert matrix.fingerprint(matrix.scenarios[0]) != plain.fingerprint(plain.scenarios[0])


def test_scenario_keys_at_their_defaults_keep_the_fingerprint_of_results_stored_before_them() -> (
    None
):
    scenario = Scenario("bmode-deep_fat", 51, bmode_driver="deep_fat", bmode_effect_db=6.0)
    assert Matrix("x", (scenario,)).fingerprint(scenario) == "59f446d888d861eb"


def test_a_mode_sees_only_its_modalities_drivers() -> None:
    both = Scenario("s", 1, bmode_driver="deep_fascia", swe_driver="muscle")
    assert planted_for(both, "bmode") == ["deep_fascia"]
    assert planted_for(both, "swe") == ["muscle"]
    assert planted_for(both, "bmode_swe") == ["deep_fascia", "muscle"]
    assert planted_for(Scenario("n", 2, bmode_driver="muscle"), "swe") == []


def test_right_means_top_and_standing_out_or_nothing_standing_out_without_a_driver() -> None:
    assert _correct(["muscle"], "muscle", "muscle")
    assert not _correct(["muscle"], "muscle", None)  # first, but not a finding
    assert not _correct(["muscle"], "dermis", "dermis")
    assert _correct(["deep_fascia", "muscle"], "deep_fascia", "deep_fascia")
    assert _correct([], "dermis", None)
    assert not _correct([], "dermis", "dermis")  # a finding where nothing was planted


def test_rates_count_only_driver_rows_whose_classifier_beats_chance() -> None:
    frame = pd.DataFrame(
        {
            "method": ["layer_ablation"] * 4,
            "reference_matching": ["flat"] * 4,
            "is_default_method": [True] * 4,
            "planted": ["muscle", "muscle", "none", "none"],
            "beats_chance": [True, False, True, True],
            # an older row has no flag (NULL)
            "confounded_by_site": [False, None, True, False],
            "correct": [True, False, True, False],
            "planted_rank": pd.array([1, 1, None, None], dtype="Int64"),
        }
    )
    row = rates(frame).iloc[0]
    assert (row["driver_rows"], row["recovered"], row["driver_rows_at_chance"]) == (1, 1, 1)
    assert (row["top1"], row["top1_rate"]) == (1, 1.0)  # the row at chance is not counted
    assert (row["null_rows"], row["null_quiet"], row["null_quiet_rate"]) == (2, 1, 0.5)
    assert row["null_flagged"] == 1


def test_a_split_the_platform_would_refuse_is_named_before_anything_runs() -> None:
    """40 subjects of seed 75 leave fold 3 without an MP subject at salt 0; salt 1 works."""
    refused = Scenario(name="null", seed=75, bmode_driver="none", swe_driver="none")
    problem = split_refusal(refused, test_fraction=0.2)
    assert problem is not None
    assert "split_seed = 0 would be refused: fold 3 has no MP subject" in problem
    assert "split_seed = 1 is the first salt that works" in problem
    assert split_refusal(replace(refused, split_seed=1), test_fraction=0.2) is None


def test_a_standing_out_layer_is_read_back_from_the_cohorts_ranking(tmp_path: Path) -> None:
    """The rows come from DuckDB, whose LIST columns arrive as arrays: a finding must be read."""
    scenario = Scenario(name="dermis", seed=1, bmode_driver="dermis", swe_driver="none")
    matrix = Matrix(name="m", settings=Settings(), scenarios=(scenario,))
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.ensure_schema()  # every table, as a cohort's warehouse has them
    layers = [layer.key for layer in TISSUE_LAYERS]
    ranking = pd.DataFrame(
        {
            "input_mode": "bmode",
            "method": "layer_ablation",
            "is_default_method": True,
            "layer": layers,
            "rank": range(1, 7),
            "n_subjects": 10,
            "subgroup": "all",
            "stands_out": [True, *[False] * 5],
            "verdict": "dermis stands out",
            "model_name": "layer-classifier-bmode",
            "model_version": "1",
            "computed_at": pd.Timestamp("2026-01-01"),
        }
    )
    warehouse.replace("layer_ranking", ranking, key=None)
    found = outcome_rows(matrix, scenario, warehouse, seconds=1.0).iloc[0]
    assert (found["top_layer"], found["standout_layer"], found["planted_rank"]) == (
        "dermis",
        "dermis",
        1,
    )
    assert found["correct"]
    warehouse.replace("layer_ranking", ranking.assign(stands_out=False), key=None)
    found = outcome_rows(matrix, scenario, warehouse, seconds=1.0).iloc[0]
    assert pd.isna(found["standout_layer"]) and not found["correct"]
