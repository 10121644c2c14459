"""The cohort simulator: determinism, the landing contract, planted drivers and arrivals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from layer_platform.ingestion.landing import SCAN_JSON, SIDES, parse_scan_json
from layer_platform.io import Volume, read_volume, volume_extension
from layer_platform.labels import MAX_LABEL, TISSUE_LAYERS, Layer
from layer_platform.simulation import (
    SimulationConfig,
    arrive,
    ground_truth_path,
    load_ground_truth,
    simulate_cohort,
    simulate_scan,
)
from layer_platform.simulation.anatomy import LAYERS_ABOVE_MUSCLE, THICKNESS_RANGE_MM
from layer_platform.simulation.subjects import draw_subject, plan_scan

#: Coarser voxels keep every test fast; anatomy and effects are defined in mm, so unchanged.
SMALL = SimulationConfig(n_subjects=4, seed=3, spacing_scale=2.0)


def _tree(landing: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``landing``: content hash and mtime."""
    return {
        str(p.relative_to(landing)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(landing.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = dataclasses.replace(SMALL, n_subjects=6, swe_fraction=0.5, annotated_fraction=0.5)
    landing = tmp_path_factory.mktemp("sim") / "landing"
    simulate_cohort(config, landing)
    return landing


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_renders_identical_scans_and_another_seed_does_not() -> None:
    first, again = (simulate_scan(SMALL, 1, "left") for _ in range(2))
    other = simulate_scan(dataclasses.replace(SMALL, seed=4), 1, "left")
    assert first.scan_json() == again.scan_json()
    for role in ("bmode", "layers"):
        assert np.array_equal(getattr(first, role).array, getattr(again, role).array)
    assert not np.array_equal(first.layers.array, other.layers.array)
    assert first.bmode.shape != other.bmode.shape or not np.array_equal(
        first.bmode.array, other.bmode.array
    )


def test_same_config_writes_the_same_cohort(tmp_path: Path, cohort: Path) -> None:
    config = load_ground_truth(ground_truth_path(cohort)).config
    landing = tmp_path / "landing"
    simulate_cohort(config, landing)
    assert ground_truth_path(landing).read_text() == ground_truth_path(cohort).read_text()
    assert sorted(p.name for p in landing.iterdir()) == sorted(p.name for p in cohort.iterdir())
    for folder in landing.iterdir():
        twin = cohort / folder.name
        assert (folder / SCAN_JSON).read_bytes() == (twin / SCAN_JSON).read_bytes()
        for path in folder.iterdir():
            if volume_extension(path) == "dcm":  # fresh DICOM UIDs per write: compare voxels
                a, b = read_volume(path), read_volume(twin / path.name)
                assert np.array_equal(a.array, b.array) and a.spacing == b.spacing
            else:
                assert path.read_bytes() == (twin / path.name).read_bytes(), path


def test_adding_subjects_changes_no_existing_subject() -> None:
    small, large = SMALL, dataclasses.replace(SMALL, n_subjects=50)
    for index in range(SMALL.n_subjects):
        assert draw_subject(small, index) == draw_subject(large, index)
        assert plan_scan(small, index, "right") == plan_scan(large, index, "right")


def test_labels_are_balanced_in_blocks() -> None:
    labels = [draw_subject(SMALL, index).label for index in range(30)]
    assert labels.count("MP") == 15
    severities = [draw_subject(SMALL, index).severity for index in range(30)]
    assert all((s > 0) == (label == "MP") for s, label in zip(severities, labels, strict=True))


# --- the landing contract ----------------------------------------------------------------------


def test_landing_zone_matches_the_contract(cohort: Path) -> None:
    truth = load_ground_truth(ground_truth_path(cohort))
    assert len(truth.scans) == 12 and len(truth.subjects) == 6
    assert {s.has_swe for s in truth.scans} == {True, False}
    assert {s.has_layers for s in truth.scans} == {True, False}
    subjects = {s.subject_id: s for s in truth.subjects}
    for scan in truth.scans:
        folder = cohort / scan.scan_id
        files = {p.name for p in folder.iterdir()}
        assert files == {*scan.files.values(), SCAN_JSON}
        marker = folder / SCAN_JSON
        assert all(
            marker.stat().st_mtime_ns >= (folder / name).stat().st_mtime_ns for name in files
        )
        meta = parse_scan_json(marker.read_bytes())
        assert set(json.loads(marker.read_text())) == {
            "scan_id",
            "subject_id",
            "label",
            "side",
            "acquired_at",
            "site",
            "device",
        }
        subject = subjects[meta.subject_id]
        assert (meta.scan_id, meta.side) == (scan.scan_id, scan.side)
        assert (meta.label, meta.site, meta.device) == (subject.label, subject.site, subject.device)

        bmode = read_volume(folder / scan.files["bmode"])
        assert (
            bmode.array.dtype == np.uint8 and volume_extension(scan.files["bmode"]) == scan.format
        )
        if scan.has_layers:
            layers = read_volume(folder / scan.files["layers"]).array
            assert layers.shape == bmode.shape and np.issubdtype(layers.dtype, np.integer)
            assert layers.min() >= 0 and layers.max() <= MAX_LABEL
            assert (layers[:, 0, :] == Layer.DERMIS).all()
            assert (np.diff(layers.astype(int), axis=1) >= 0).all(), "layers out of depth order"
        if scan.has_swe:
            _check_swe(read_volume(folder / scan.files["swe"]), bmode)
        assert not any(volume_extension(n) == "dcm" for n in files - {scan.files["bmode"]})


def _check_swe(swe: Volume, bmode: Volume) -> None:
    assert np.issubdtype(swe.array.dtype, np.floating)
    assert np.allclose(swe.extent_mm, bmode.extent_mm, rtol=1e-4), "SWE covers another view"
    assert all(s > b for s, b in zip(swe.spacing, bmode.spacing, strict=True))
    assert (np.nan_to_num(swe.array[:, 0, :]) == 0).all(), "no signal band at the skin"
    stiff = swe.array[np.isfinite(swe.array) & (swe.array > 0)]
    assert stiff.size and 1.0 < np.median(stiff) < 100.0


def test_some_swe_volumes_have_dropout_patches() -> None:
    config = dataclasses.replace(SMALL, swe_fraction=1.0)
    lost = [np.isnan(simulate_scan(config, i, "left").swe.array).any() for i in range(8)]
    assert any(lost) and not all(lost)


def test_layer_thicknesses_are_plausible() -> None:
    for index in range(4):
        scan = simulate_scan(SMALL, index, "left")
        depth_mm = scan.layers.spacing[1]
        for layer in LAYERS_ABOVE_MUSCLE:
            low, high = THICKNESS_RANGE_MM[layer]
            mean_mm = (scan.layers.array == layer).sum(axis=1).mean() * depth_mm
            assert 0.6 * low < mean_mm < 1.4 * high, (index, layer.key, mean_mm)


# --- planted drivers ---------------------------------------------------------------------------


def _per_layer_statistics(config: SimulationConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per subject (both sides averaged) and layer: mean B-mode grey, median SWE kPa; and MP."""
    bmode = np.full((config.n_subjects, len(TISSUE_LAYERS)), np.nan)
    swe = np.full_like(bmode, np.nan)
    is_mp = np.zeros(config.n_subjects, dtype=bool)
    for index in range(config.n_subjects):
        grey, kpa = [], []
        for side in SIDES:
            scan = simulate_scan(config, index, side)
            labels, stiffness = scan.swe_layers.array, scan.swe.array
            measured = np.isfinite(stiffness) & (stiffness > 0)
            grey.append(
                [scan.bmode.array[scan.layers.array == layer].mean() for layer in TISSUE_LAYERS]
            )
            kpa.append(
                [
                    np.median(stiffness[measured & (labels == layer)])
                    if (measured & (labels == layer)).any()
                    else np.nan
                    for layer in TISSUE_LAYERS
                ]
            )
        bmode[index] = np.mean(grey, axis=0)
        measured_sides = np.isfinite(kpa).sum(axis=0)  # dermis often lies in the no-signal band
        swe[index] = np.divide(
            np.nansum(kpa, axis=0),
            measured_sides,
            out=np.full(len(TISSUE_LAYERS), np.nan),
            where=measured_sides > 0,
        )
        is_mp[index] = scan.plan.subject.label == "MP"
    return bmode, swe, is_mp


def _p_values(values: np.ndarray, is_mp: np.ndarray) -> dict[Layer, float]:
    """Rank-test p-value per layer measured in at least 8 subjects of each class."""
    result = {}
    for column, layer in enumerate(TISSUE_LAYERS):
        known = np.isfinite(values[:, column])
        mp, control = values[known & is_mp, column], values[known & ~is_mp, column]
        if min(len(mp), len(control)) >= 8:
            result[layer] = mannwhitneyu(mp, control).pvalue
    return result


@pytest.mark.parametrize(
    ("bmode_driver", "swe_driver"),
    [(Layer.DEEP_FASCIA, Layer.MUSCLE), (Layer.SUPERFICIAL_FAT, Layer.DEEP_FASCIA), (None, None)],
)
def test_only_the_planted_driver_layer_differs_between_classes(
    bmode_driver: Layer | None, swe_driver: Layer | None
) -> None:
    config = SimulationConfig(
        n_subjects=30,
        seed=7,
        bmode_driver=bmode_driver,
        swe_driver=swe_driver,
        bmode_effect_db=8.0,
        swe_effect=0.8,
        swe_fraction=1.0,
        field_of_view_mm=(16.0, 35.0, 12.0),
        spacing_scale=2.0,
    )
    bmode, swe, is_mp = _per_layer_statistics(config)
    bonferroni = 0.05 / (2 * len(TISSUE_LAYERS))
    for driver, values in ((bmode_driver, bmode), (swe_driver, swe)):
        p_values = _p_values(values, is_mp)
        assert len(p_values) >= len(TISSUE_LAYERS) - 1 and (driver is None or driver in p_values)
        for layer, p in p_values.items():
            if layer == driver:
                assert p < 0.01, f"planted driver {layer.key} not detected (p={p:.3g})"
            else:
                assert p > bonferroni, f"{layer.key} differs but is no driver (p={p:.3g})"


def test_pain_changes_only_voxels_of_the_driver_layer() -> None:
    planted = dataclasses.replace(SMALL, swe_fraction=1.0)
    unplanted = dataclasses.replace(planted, bmode_effect_db=0.0, swe_effect=0.0)
    index = next(i for i in range(10) if draw_subject(planted, i).label == "MP")
    with_pain, without = (
        simulate_scan(planted, index, "left"),
        simulate_scan(unplanted, index, "left"),
    )
    changed = with_pain.bmode.array != without.bmode.array
    assert changed.any()
    assert set(np.unique(with_pain.layers.array[changed])) == {planted.bmode_driver}
    changed = ~np.isclose(with_pain.swe.array, without.swe.array, equal_nan=True)
    assert set(np.unique(with_pain.swe_layers.array[changed])) == {planted.swe_driver}


def test_without_drivers_no_voxel_depends_on_the_label() -> None:
    """Flipping every label (mp_fraction 0 → 1) must change scan.json's label and nothing else."""
    all_control, all_mp = (
        dataclasses.replace(
            SMALL, bmode_driver=None, swe_driver=None, mp_fraction=f, swe_fraction=1
        )
        for f in (0.0, 1.0)
    )
    for index in range(3):
        a, b = simulate_scan(all_control, index, "right"), simulate_scan(all_mp, index, "right")
        assert (a.scan_json()["label"], b.scan_json()["label"]) == ("control", "MP")
        assert {**a.scan_json(), "label": None} == {**b.scan_json(), "label": None}
        assert dataclasses.replace(a.plan, subject=None) == dataclasses.replace(
            b.plan, subject=None
        )
        for role in ("bmode", "layers", "swe"):
            assert np.array_equal(getattr(a, role).array, getattr(b, role).array, equal_nan=True)


# --- cohort lifecycle --------------------------------------------------------------------------


def test_arrivals_add_scans_without_touching_existing_ones(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    config = dataclasses.replace(SMALL, n_subjects=2)
    simulate_cohort(config, landing)
    before = _tree(landing)

    assert arrive(landing, 3) == ["S0003-L", "S0003-R", "S0004-L"]
    after = _tree(landing)
    assert {k: v for k, v in after.items() if k in before} == before
    assert arrive(landing, 1) == ["S0004-R"]

    truth = load_ground_truth(ground_truth_path(landing))
    assert truth.config == config
    assert [s.scan_id for s in truth.scans][-4:] == ["S0003-L", "S0003-R", "S0004-L", "S0004-R"]
    assert [s.subject_id for s in truth.subjects] == ["S0001", "S0002", "S0003", "S0004"]
    arrived = read_volume(landing / "S0004-R" / truth.scans[-1].files["bmode"])
    assert np.array_equal(arrived.array, simulate_scan(config, 3, "right").bmode.array)


def test_refuses_an_existing_cohort_unless_told_to_overwrite(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    simulate_cohort(dataclasses.replace(SMALL, n_subjects=2), landing)
    (landing / "from-elsewhere").mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        simulate_cohort(SMALL, landing)
    truth = simulate_cohort(dataclasses.replace(SMALL, n_subjects=1), landing, overwrite=True)
    assert sorted(p.name for p in landing.iterdir()) == ["S0001-L", "S0001-R", "from-elsewhere"]
    assert load_ground_truth(ground_truth_path(landing)) == truth
    ground_truth_path(landing).unlink()  # as after an interrupted run: folders, no ground truth
    with pytest.raises(FileExistsError, match="S0001-L"):
        simulate_cohort(SMALL, landing)


def test_arrivals_need_a_cohort(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="simulate a cohort"):
        arrive(tmp_path / "landing", 2)


# --- config ------------------------------------------------------------------------------------


def test_config_round_trips_through_json_and_accepts_layer_names() -> None:
    config = SimulationConfig(
        bmode_driver="superficial_fascia", swe_driver="none", formats=["nrrd"]
    )
    assert config.bmode_driver == Layer.SUPERFICIAL_FASCIA and config.swe_driver is None
    assert SimulationConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    "bad",
    [
        {"n_subjects": 0},
        {"mp_fraction": 1.5},
        {"bmode_driver": "bone"},
        {"swe_driver": Layer.BACKGROUND},
        {"formats": ("dcm",)},
        {"formats": ("png",)},
        {"swe_effect": -1.0},
        {"spacing_scale": 0.0},
    ],
)
def test_config_rejects_impossible_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        SimulationConfig(**bad)
