"""Working-grid preprocessing: geometry (skin anchoring, centring), SWE alignment, storage."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from layer_platform.errors import ScanError
from layer_platform.imaging.preprocess import (
    FILES,
    PRESETS,
    TRANSFORM_FILE,
    PreprocessConfig,
    PreprocessedScan,
    load_preprocessed,
    normalise_bmode,
    preprocess_scan,
    save_preprocessed,
)
from layer_platform.imaging.resample import resampled_shape
from layer_platform.io import Volume, read_volume

NATIVE = (0.5, 0.2, 1.0)


def fixed(spacing, shape) -> PreprocessConfig:
    """Fixed intensity keeps 8-bit values readable: grey g becomes g / 255."""
    return PreprocessConfig(target_spacing=spacing, target_shape=shape, intensity="fixed")


def bmode(shape=(10, 30, 4), spacing=NATIVE, seed=0) -> Volume:
    """Speckle-like 8-bit B-mode with a bright skin row at depth 0."""
    array = np.random.default_rng(seed).integers(40, 200, shape).astype(np.uint8)
    array[:, 0, :] = 255
    return Volume(array, spacing)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16])
def test_fixed_intensity_of_integer_grey_is_the_float_path(dtype):
    """Integer grey levels take a float32 shortcut: same values as the float64 path, same
    refusal of values beyond 0..255."""
    config = fixed(NATIVE, (10, 30, 4))
    grey = bmode().array.astype(dtype)
    ours = normalise_bmode(grey, config)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, normalise_bmode(grey.astype(np.float64), config))
    if dtype is not np.uint8:
        grey[0, 0, 0] = 256
        with pytest.raises(ScanError, match=r"0\.\.255"):
            normalise_bmode(grey, config)


def test_resampling_gives_expected_shape_and_physical_extent():
    # 10 x 30 x 4 voxels of 0.5 x 0.2 x 1.0 mm = 5 x 6 x 4 mm; at 1.0 x 0.4 x 2.0 mm: 5 x 15 x 2.
    array = np.full((10, 30, 4), 50, dtype=np.uint8)
    array[:, 10:12, :] = 250  # a bright sheet at 2.0-2.4 mm depth
    volume = Volume(array, NATIVE)
    shape = resampled_shape(volume.extent_mm, (1.0, 0.4, 2.0))
    assert shape == (5, 15, 2)

    out = preprocess_scan(volume, None, None, fixed((1.0, 0.4, 2.0), shape))
    assert out.bmode.shape == shape
    extent = tuple(n * s for n, s in zip(out.bmode.shape, out.spacing, strict=True))
    assert extent == pytest.approx(volume.extent_mm)
    # The sheet lands at the same physical depth: voxel 5 covers 2.0-2.4 mm.
    profile = out.bmode[2, :, 0]
    assert int(np.argmax(profile)) == 5
    assert profile[5] == pytest.approx(250 / 255)
    assert profile[3] == pytest.approx(50 / 255)


@pytest.mark.parametrize("target_depth", [12, 40], ids=["too-deep-crops", "too-shallow-pads"])
def test_skin_row_stays_at_depth_zero(target_depth):
    volume = bmode(shape=(10, 30, 4))
    volume.array[:, -1, :] = 0  # a dark marker at the deepest row
    out = preprocess_scan(volume, None, None, fixed(NATIVE, (10, target_depth, 4)))

    assert out.bmode.shape == (10, target_depth, 4)
    np.testing.assert_array_equal(out.bmode[:, 0, :], 1.0)
    np.testing.assert_allclose(out.bmode[:, :12, :], volume.array[:, :12, :] / 255, atol=1e-6)
    if target_depth > 30:  # padded at the deep end only, with 0
        assert out.bmode[:, 30:, :].max() == 0.0
    else:  # cropped at the deep end only: the marker row is gone
        assert out.bmode[:, -1, :].min() > 0.0


def test_lateral_and_sweep_are_centred():
    ramp = np.broadcast_to(np.arange(1, 41, dtype=np.uint8)[:, None, None], (40, 6, 8))
    volume = Volume(np.ascontiguousarray(ramp), NATIVE)

    cropped = preprocess_scan(volume, None, None, fixed(NATIVE, (32, 6, 4))).bmode
    np.testing.assert_allclose(cropped[:, 0, 0] * 255, np.arange(5, 37), atol=1e-4)

    padded = preprocess_scan(volume, None, None, fixed(NATIVE, (48, 6, 12))).bmode
    np.testing.assert_allclose(padded[4:44, 0, 5] * 255, np.arange(1, 41), atol=1e-4)
    assert padded[:4].max() == 0.0 and padded[44:].max() == 0.0
    assert padded[:, :, :2].max() == 0.0 and padded[:, :, 10:].max() == 0.0
    assert padded[4:44, :, 2:10].min() > 0.0


def test_resampled_labels_keep_their_original_values():
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array([0, 2, 5], dtype=np.uint8), size=(10, 30, 4))
    volume = bmode()
    out = preprocess_scan(
        volume, None, Volume(labels, NATIVE), PreprocessConfig((0.7, 0.3, 1.3), (8, 20, 3))
    )
    assert out.layers.dtype == np.uint8
    assert set(np.unique(out.layers)) == {0, 2, 5}


def test_labels_outside_the_contract_are_refused():
    labels = np.full((10, 30, 4), 9, dtype=np.uint8)
    with pytest.raises(ScanError, match=r"labels 9\.\.9"):
        preprocess_scan(bmode(), None, Volume(labels, NATIVE), PreprocessConfig.cpu())


def swe_on_coarse_grid() -> Volume:
    """kPa = 10 + 5 x depth(mm) over the B-mode's 5 x 6 x 4 mm; no signal above 1.5 mm."""
    spacing = (1.0, 0.5, 2.0)
    depth_mm = (np.arange(12) + 0.5) * spacing[1]
    kpa = np.broadcast_to(10 + 5 * depth_mm[None, :, None], (5, 12, 2)).astype(np.float32)
    kpa = kpa.copy()
    kpa[:, :3, :] = 0.0  # near-field band, 0-1.5 mm: no estimate
    kpa[2, 8, 1] = np.nan  # a lost shear wave
    return Volume(kpa, spacing)


def test_coarse_swe_is_aligned_and_its_validity_mask_is_right():
    out = preprocess_scan(bmode(), swe_on_coarse_grid(), None, fixed(NATIVE, (10, 30, 4)))
    assert out.swe.dtype == np.float32 and out.swe_valid.dtype == np.bool_

    # B-mode rows 0-6 (0-1.4 mm) lie inside the no-signal band; rows 8+ well below it.
    assert not out.swe_valid[:, :7, :].any()
    assert (out.swe[~out.swe_valid] == 0).all()
    assert out.swe_valid[:, 8:, :].sum() > 0.9 * out.swe_valid[:, 8:, :].size
    # The lost patch (lateral 2-3 mm, depth 4-4.5 mm, sweep 2-4 mm) stays invalid.
    assert not out.swe_valid[4:6, 20:22, 2:4].any()

    # Next to the band, valid voxels average measured neighbours only (never towards 0 kPa).
    assert out.swe[out.swe_valid].min() >= 10 + 5 * 1.75 - 1e-4  # the shallowest measurement
    # Valid voxels report the field at their own depth (a linear field survives bilinear).
    depth_mm = (np.arange(30) + 0.5) * 0.2
    expected = np.broadcast_to(10 + 5 * depth_mm[None, :, None], out.swe.shape)
    interior = out.swe_valid.copy()
    interior[:, :9, :] = False  # half a coarse voxel next to the band is extrapolated,
    interior[:, 29:, :] = False  # and so is the deep edge, past the last coarse voxel centre
    interior[3:7, 17:25, :] = False  # and so are the neighbours of the lost patch
    np.testing.assert_allclose(out.swe[interior], expected[interior], rtol=1e-4)


def test_swe_with_another_field_of_view_is_refused():
    kpa = np.full((5, 15, 2), 20.0, dtype=np.float32)  # 7.5 mm deep instead of 6 mm
    with pytest.raises(ScanError, match="SWE grid cannot be aligned with the B-mode") as err:
        preprocess_scan(bmode(), Volume(kpa, (1.0, 0.5, 2.0)), None, PreprocessConfig.cpu())
    assert "5.00 x 7.50 x 4.00 mm" in str(err.value)
    assert "5.00 x 6.00 x 4.00 mm" in str(err.value)


def test_percentile_normalisation_is_in_unit_range_and_gain_invariant():
    volume = bmode()
    config = PreprocessConfig((1.0, 0.4, 2.0), (5, 15, 2), intensity="percentile")
    base = preprocess_scan(volume, None, None, config).bmode
    louder = Volume(volume.array.astype(np.float32) * 3.7, NATIVE)
    assert base.min() >= 0.0 and base.max() <= 1.0
    np.testing.assert_allclose(preprocess_scan(louder, None, None, config).bmode, base, atol=1e-6)

    fixed_base = preprocess_scan(volume, None, None, fixed((1.0, 0.4, 2.0), (5, 15, 2))).bmode
    assert not np.allclose(fixed_base, base)  # "fixed" keeps absolute grey levels


def test_fixed_intensity_refuses_non_8bit_bmode():
    volume = Volume(np.full((10, 30, 4), 1000.0, dtype=np.float32), NATIVE)
    with pytest.raises(ScanError, match="8-bit"):
        preprocess_scan(volume, None, None, fixed(NATIVE, (10, 30, 4)))


def test_flat_bmode_is_refused_by_percentile_normalisation():
    volume = Volume(np.full((10, 30, 4), 80, dtype=np.uint8), NATIVE)
    config = dataclasses.replace(PreprocessConfig.cpu(), intensity="percentile")
    with pytest.raises(ScanError, match="no contrast"):
        preprocess_scan(volume, None, None, config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"intensity": "zscore"}, "percentile, fixed"),
        ({"target_spacing": (1.0, 0.0, 1.0)}, "target_spacing"),
        ({"target_shape": (32, 0, 16)}, "target_shape"),
        ({"percentiles": (99.0, 1.0)}, "percentiles"),
        ({"swe_extent_tolerance": 5.0}, "0.05"),
    ],
)
def test_config_validation_says_what_to_do(kwargs, message):
    args = {"target_spacing": (1.0, 0.25, 1.5), "target_shape": (32, 144, 16), **kwargs}
    with pytest.raises(ValueError, match=message):
        PreprocessConfig(**args)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_resolve_fascia_and_cover_the_field_of_view(name):
    preset = PreprocessConfig.preset(name)
    lateral, depth, sweep = (
        n * s for n, s in zip(preset.target_shape, preset.target_spacing, strict=True)
    )
    assert 0.5 / preset.target_spacing[1] >= 2  # the thinnest superficial fascia
    assert lateral >= 32 and depth >= 35 and sweep >= 24  # the simulator's field of view


def test_an_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="cpu, gpu, smoke"):
        PreprocessConfig.preset("GPU")


def test_stats_report_grid_intensity_swe_and_tissue():
    out = preprocess_scan(bmode(), swe_on_coarse_grid(), None, fixed(NATIVE, (10, 60, 4)))
    stats = out.stats()
    assert stats["shape"] == (10, 60, 4) and stats["spacing"] == NATIVE
    assert stats["bmode_max"] == pytest.approx(1.0)
    assert stats["bmode_min"] == 0.0  # padding
    assert stats["tissue_fraction"] == pytest.approx(0.5)  # half the grid is padding
    assert 0.2 < stats["swe_valid_fraction"] < 0.5
    assert stats["all_finite"] is True
    assert (
        preprocess_scan(bmode(), None, None, PreprocessConfig.cpu()).stats()["swe_valid_fraction"]
        is None
    )


def assert_same(a: PreprocessedScan, b: PreprocessedScan) -> None:
    assert a.spacing == b.spacing
    assert a.grid == b.grid  # the transform record round-trips exactly
    for role in FILES:
        left, right = getattr(a, role), getattr(b, role)
        assert (left is None) == (right is None), role
        if left is not None:
            assert left.dtype == right.dtype, role
            np.testing.assert_array_equal(left, right)


@pytest.mark.parametrize("staged", [False, True], ids=["atomic-files", "staged-folder"])
def test_save_and_load_round_trip(tmp_path: Path, staged: bool):
    labels = Volume(
        np.repeat(np.arange(7, dtype=np.uint8), 5)[None, :30, None].repeat(10, 0).repeat(4, 2),
        NATIVE,
    )
    scan = preprocess_scan(
        bmode(), swe_on_coarse_grid(), labels, PreprocessConfig((1.0, 0.4, 2.0), (6, 16, 3))
    )
    written = save_preprocessed(scan, tmp_path / "scan-1", staged=staged)
    assert {p.name for p in written.values()} == set(FILES.values())
    files = sorted(p.name for p in (tmp_path / "scan-1").iterdir())
    assert files == sorted([*FILES.values(), TRANSFORM_FILE])
    assert_same(load_preprocessed(tmp_path / "scan-1"), scan)


def test_saving_without_swe_removes_a_stale_swe_map(tmp_path: Path):
    config = PreprocessConfig((1.0, 0.4, 2.0), (5, 15, 2))
    save_preprocessed(preprocess_scan(bmode(), swe_on_coarse_grid(), None, config), tmp_path)
    again = preprocess_scan(bmode(seed=1), None, None, config)
    save_preprocessed(again, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bmode.nii", TRANSFORM_FILE]
    assert_same(load_preprocessed(tmp_path), again)


def test_loading_an_empty_folder_says_what_is_missing(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"bmode\.nii"):
        load_preprocessed(tmp_path)


def test_the_transform_record_places_the_working_grid_in_the_scan(tmp_path: Path):
    """Cropped laterally (centred), padded in depth (deep end): working voxel 0's centre in mm."""
    native = Volume(bmode(shape=(20, 30, 4)).array, NATIVE, origin=(5.0, -2.0, 1.0))
    scan = preprocess_scan(native, None, None, fixed((1.0, 0.4, 2.0), (6, 20, 2)))
    assert scan.grid is not None
    assert scan.grid.shift == (2, 0, 0)  # 10 resampled lateral voxels, 6 kept from the 3rd
    # lateral: native corner 5.0 - 0.25, + 2 working voxels + half a voxel = 7.25 mm
    assert scan.grid.working_origin == pytest.approx((7.25, -2.0 - 0.1 + 0.2, 1.0 - 0.5 + 1.0))
    save_preprocessed(scan, tmp_path)
    working = read_volume(tmp_path / FILES["bmode"])
    assert working.origin == pytest.approx(scan.grid.working_origin, abs=1e-5)
