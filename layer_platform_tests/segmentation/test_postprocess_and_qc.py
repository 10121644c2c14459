"""Anatomical order on hand-built maps; QC figures on a phantom of known thickness."""

from __future__ import annotations

import numpy as np
import pytest

from layer_platform.labels import Layer
from layer_platform.segmentation.postprocess import enforce_anatomical_order, order_ok_fraction
from layer_platform.segmentation.qc import dice_per_layer, layer_qc, qc_problems

#: Voxels per layer along depth in the phantom (dermis … muscle).
ROWS = (2, 5, 1, 3, 2, 7)
SPACING = (1.0, 0.25, 1.5)


def phantom(shape_lateral: int = 4, shape_sweep: int = 3) -> np.ndarray:
    labels = np.zeros((shape_lateral, sum(ROWS), shape_sweep), dtype=np.uint8)
    start = 0
    for index, rows in enumerate(ROWS, start=1):
        labels[:, start : start + rows, :] = index
        start += rows
    return labels


def test_ordered_map_is_unchanged() -> None:
    labels = phantom()
    assert order_ok_fraction(labels) == 1.0
    np.testing.assert_array_equal(enforce_anatomical_order(labels), labels)


def test_island_and_swapped_layers_are_fixed() -> None:
    labels = phantom()
    broken = labels.copy()
    broken[0, 9, 0] = Layer.DERMIS  # an island of dermis inside deep fat
    broken[2, 11:13, 1] = Layer.MUSCLE  # muscle above the deep fascia
    broken[2, 13:15, 1] = Layer.DEEP_FASCIA
    assert order_ok_fraction(broken) == pytest.approx(1 - 2 / 12)
    fixed = enforce_anatomical_order(broken)
    assert order_ok_fraction(fixed) == 1.0
    assert fixed[0, 9, 0] == Layer.DEEP_FAT
    # the swap is mended with the fewest changes (2 voxels; several fixes tie at that cost)
    assert int((fixed != broken).sum()) == 1 + 2


def test_background_above_skin_and_below_tissue_is_allowed() -> None:
    labels = phantom()
    labels[:, :1, :] = 0
    labels[:, -2:, :] = 0
    assert order_ok_fraction(labels) == 1.0


def test_upside_down_map_is_out_of_order() -> None:
    assert order_ok_fraction(phantom()[:, ::-1, :].copy()) == 0.0


def test_qc_thickness_and_volume_on_a_known_phantom() -> None:
    labels = phantom()
    rows = {row.layer: row for row in layer_qc(labels, SPACING)}
    voxel_ml = np.prod(SPACING) / 1000
    for index, n_rows in enumerate(ROWS, start=1):
        row = rows[Layer(index).key]
        assert row.thickness_mean_mm == pytest.approx(n_rows * SPACING[1])
        assert row.thickness_sd_mm == pytest.approx(0.0)
        assert row.n_voxels == n_rows * 4 * 3
        assert row.volume_ml == pytest.approx(row.n_voxels * voxel_ml)
        assert row.order_ok and row.dice is None


def test_dice_per_layer_by_hand() -> None:
    ref = phantom()
    pred = ref.copy()
    pred[:, 2, :] = Layer.DERMIS  # first superficial-fat row called dermis: 12 voxels move
    dice = dice_per_layer(pred, ref)
    assert dice[Layer.DERMIS] == pytest.approx(2 * 24 / (36 + 24))
    assert dice[Layer.SUPERFICIAL_FAT] == pytest.approx(2 * 48 / (48 + 60))
    assert dice[Layer.MUSCLE] == 1.0


def test_broken_anatomy_is_caught() -> None:
    labels = phantom()
    labels[:, 7, :] = Layer.DEEP_FAT  # superficial fascia erased
    problems = qc_problems(layer_qc(labels, SPACING), order_ok_fraction(labels))
    assert problems["all_layers_present"] == ["superficial_fascia missing"]
    upside_down = phantom()[:, ::-1, :].copy()
    problems = qc_problems(layer_qc(upside_down, SPACING), order_ok_fraction(upside_down))
    assert problems["anatomical_order"]
