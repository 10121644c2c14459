from __future__ import annotations

import numpy as np
import pytest

from layer_platform.classification.data import Scan
from layer_platform.classification.modes import (
    INPUT_MODES,
    build_input,
    eligible_scans,
    encode_swe,
    make_items,
    n_channels,
)
from layer_platform.errors import ScanError
from layer_platform_tests.classification.synthetic import synthetic_scans

SHAPE = (5, 7, 3)


def _volumes(seed: int = 0):
    rng = np.random.default_rng(seed)
    bmode = rng.random(SHAPE).astype(np.float32)
    valid = rng.random(SHAPE) < 0.7
    swe = np.where(valid, rng.uniform(2, 150, SHAPE), 0).astype(np.float32)
    return bmode, swe, valid


@pytest.mark.parametrize("mode", INPUT_MODES)
def test_build_input_has_the_modes_channels_on_the_scan_grid(mode: str) -> None:
    bmode, swe, valid = _volumes()
    x = build_input(mode, bmode, swe, valid)
    assert x.shape == (n_channels(mode), *SHAPE)
    assert x.dtype == np.float32


def test_bmode_swe_stacks_bmode_first_then_encoded_swe() -> None:
    bmode, swe, valid = _volumes()
    x = build_input("bmode_swe", bmode, swe, valid)
    np.testing.assert_array_equal(x[0], bmode)
    np.testing.assert_array_equal(x[1], encode_swe(swe, valid))


def test_swe_encoding_zeroes_invalid_voxels_and_keeps_valid_ones_positive_and_ordered() -> None:
    swe = np.array([[[1.0, 10.0, 100.0, 300.0, 999.0]]], dtype=np.float32)
    valid = np.array([[[True, True, True, True, False]]])
    encoded = encode_swe(swe, valid).ravel()
    assert encoded[-1] == 0.0
    assert np.all(encoded[:4] > 0)
    assert np.all(np.diff(encoded[:4]) > 0)
    assert encoded[3] == pytest.approx(1.0)  # the reference stiffness maps to 1


def test_swe_values_under_an_invalid_mask_are_ignored_even_if_garbage() -> None:
    swe = np.array([[[np.nan, -5.0, 20.0]]])
    valid = np.array([[[False, False, True]]])
    assert encode_swe(swe, valid).ravel()[:2].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("swe", "valid"),
    [
        (np.full(SHAPE, -1.0), np.ones(SHAPE, bool)),  # negative kPa where valid
        (np.full(SHAPE, np.inf), np.ones(SHAPE, bool)),
        (np.ones((5, 7, 4)), np.ones((5, 7, 4), bool)),  # off the B-mode grid
        (np.ones(SHAPE), np.ones(SHAPE, np.uint8)),  # mask not boolean
    ],
)
def test_bad_swe_is_a_scan_error(swe: np.ndarray, valid: np.ndarray) -> None:
    with pytest.raises(ScanError):
        build_input("swe", np.zeros(SHAPE), swe, valid)


def test_swe_mode_without_swe_is_a_scan_error_and_unknown_modes_are_rejected() -> None:
    with pytest.raises(ScanError, match="needs SWE"):
        build_input("bmode_swe", np.zeros(SHAPE))
    with pytest.raises(ValueError, match="unknown input mode"):
        n_channels("doppler")


def test_eligible_scans_excludes_scans_without_usable_swe_only_in_swe_modes() -> None:
    with_swe, *_ = synthetic_scans(n_subjects=1, scans_per_subject=1, shape=SHAPE)
    no_swe = Scan("b", "s2", "control", with_swe.bmode)
    all_invalid = Scan("c", "s3", "MP", with_swe.bmode, with_swe.bmode, np.zeros(SHAPE, bool))
    scans = [with_swe, no_swe, all_invalid]
    for mode in ("swe", "bmode_swe"):
        kept, excluded = eligible_scans(scans, mode)
        assert [s.scan_id for s in kept] == [with_swe.scan_id]
        assert excluded == 2
    kept, excluded = eligible_scans(scans, "bmode")
    assert len(kept) == 3
    assert excluded == 0


def test_make_items_names_the_scan_that_failed() -> None:
    bad = Scan("bad_scan", "s1", "MP", np.full(SHAPE, np.nan, dtype=np.float32))
    with pytest.raises(ScanError) as info:
        make_items([bad], "bmode")
    assert info.value.scan_id == "bad_scan"


def test_scan_rejects_unknown_labels_and_swe_without_its_mask() -> None:
    with pytest.raises(ValueError, match="unknown pain label"):
        Scan("a", "s", "pain", np.zeros(SHAPE))
    with pytest.raises(ScanError, match="together"):
        Scan("a", "s", "MP", np.zeros(SHAPE), swe=np.zeros(SHAPE))
