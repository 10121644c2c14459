"""Every layer eroded and dilated by one voxel: masks, re-aggregated maps and ablations by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from layer_platform.attribution import AttributionConfig, attribute
from layer_platform.attribution.boundary import boundary_masks, boundary_mean_saliency
from layer_platform.attribution.scan_profile import profile_scan
from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform_tests.attribution.toys import VoxelLinear

#: Rows per layer of ``stacked``: three, so erosion keeps one row of a middle layer.
ROWS = 3
#: Voxels per depth row of ``stacked`` (4 lateral x 3 sweep).
PER_ROW = 12


def stacked(thickness: int = ROWS) -> np.ndarray:
    """4 x (1 + 6 thickness) x 3: a background row at the top (the skin side), then layers 1..6,
    ``thickness`` depth rows each, running through the whole lateral and sweep extent."""
    rows = [0] + [int(layer) for layer in Layer if layer for _ in range(thickness)]
    return np.broadcast_to(np.array(rows)[None, :, None], (4, len(rows), 3)).copy()


def depth_rows(mask: np.ndarray) -> list[int]:
    """The depth rows a mask covers (each covered through its whole row)."""
    covered = mask.all(axis=(0, 2))
    assert (mask.any(axis=(0, 2)) == covered).all(), "a perturbed layer covers whole rows"
    return np.flatnonzero(covered).tolist()


def test_erosion_keeps_each_layers_interior_and_leaves_the_volume_edge_alone():
    """Row 0 background; dermis 1-3 ... muscle 16-18. Each layer loses its rows next to
    another label (background included); muscle's last row is the volume's edge, not a
    boundary, and the lateral and sweep edges never erode."""
    masks = boundary_masks(stacked(), "eroded")
    assert {layer.key: depth_rows(mask) for layer, mask in masks.items()} == {
        "dermis": [2],
        "superficial_fat": [5],
        "superficial_fascia": [8],
        "deep_fat": [11],
        "deep_fascia": [14],
        "muscle": [17, 18],
    }
    assert not np.logical_and(masks[Layer.DERMIS], masks[Layer.MUSCLE]).any()


@pytest.mark.parametrize("seed", range(3))
def test_masks_are_each_layers_own_binary_erosion_and_dilation(seed: int):
    """On random label maps (every voxel at a boundary somewhere), the masks are scipy's
    6-connected morphology of each layer: erosion with the volume's edge counted inside,
    dilation kept within tissue."""
    labels = np.random.default_rng(seed).integers(0, 7, size=(5, 9, 4)).astype(np.uint8)
    labels[:, 4:6] = Layer.DEEP_FAT  # and a slab with an interior
    cross = ndimage.generate_binary_structure(3, 1)
    eroded, dilated = boundary_masks(labels, "eroded"), boundary_masks(labels, "dilated")
    for layer in TISSUE_LAYERS:
        own = labels == layer
        assert np.array_equal(eroded[layer], ndimage.binary_erosion(own, cross, border_value=1))
        assert np.array_equal(
            dilated[layer], ndimage.binary_dilation(own, cross) & (labels > Layer.BACKGROUND)
        )
    assert eroded[Layer.DEEP_FAT].any()


def test_dilation_grows_each_layer_into_its_neighbours_but_never_into_background():
    masks = boundary_masks(stacked(), "dilated")
    assert {layer.key: depth_rows(mask) for layer, mask in masks.items()} == {
        "dermis": [1, 2, 3, 4],  # not row 0: background
        "superficial_fat": [3, 4, 5, 6, 7],
        "superficial_fascia": [6, 7, 8, 9, 10],
        "deep_fat": [9, 10, 11, 12, 13],
        "deep_fascia": [12, 13, 14, 15, 16],
        "muscle": [15, 16, 17, 18],
    }
    # a boundary voxel belongs to both dilated neighbours: no layer order decides
    assert (masks[Layer.DEEP_FASCIA] & masks[Layer.MUSCLE]).sum() == 2 * PER_ROW


def test_a_layer_two_voxels_thick_erodes_away():
    masks = boundary_masks(stacked(thickness=2), "eroded")
    assert not masks[Layer.DEEP_FASCIA].any()
    with pytest.raises(ValueError, match="boundary must be one of"):
        boundary_masks(stacked(), "shifted")


def boundary_map(labels: np.ndarray) -> np.ndarray:
    """1 on deep fascia's two boundary rows (13, 15), 0 in its middle row (14), 0.25 elsewhere:
    deep fascia wins only thanks to its boundary voxels."""
    attribution = np.full(labels.shape, 0.25)
    attribution[:, [13, 15]] = 1.0
    attribution[:, 14] = 0.0
    return attribution


def test_a_layer_that_wins_on_its_boundary_voxels_loses_when_they_move():
    """The scale is 1 (the 99.5th percentile of tissue |a|). As segmented deep fascia has mean
    2/3 against 0.25 everywhere else; eroded, its middle row's 0; dilated (rows 12-16),
    (0.25 + 1 + 0 + 1 + 0.25) / 5 = 0.5, while muscle (rows 15-18) gains a boundary row:
    (1 + 3 x 0.25) / 4."""
    labels = stacked()
    attribution = boundary_map(labels)
    eroded = boundary_mean_saliency(attribution, labels, boundary_masks(labels, "eroded"))
    dilated = boundary_mean_saliency(attribution, labels, boundary_masks(labels, "dilated"))
    assert eroded["deep_fascia"] == pytest.approx(0.0)
    assert eroded["deep_fat"] == pytest.approx(0.25)
    assert max(eroded, key=eroded.__getitem__) != "deep_fascia"
    assert dilated["deep_fascia"] == pytest.approx(0.5)
    assert dilated["deep_fat"] == pytest.approx((4 * 0.25 + 1) / 5)
    assert dilated["muscle"] == pytest.approx((1 + 3 * 0.25) / 4)


def test_uncounted_voxels_and_eroded_away_layers_give_nan():
    labels = stacked()
    attribution = np.ones(labels.shape)
    counted = np.ones(labels.shape, dtype=bool)
    counted[:, labels[0, :, 0] == Layer.MUSCLE] = False  # e.g. no SWE measured in muscle
    dilated = boundary_mean_saliency(
        attribution, labels, boundary_masks(labels, "dilated"), counted=counted
    )
    assert dilated["dermis"] == pytest.approx(1.0)
    assert dilated["muscle"] == pytest.approx(1.0), "muscle's dilated row 15 is counted"
    eroded = boundary_mean_saliency(
        attribution, labels, boundary_masks(labels, "eroded"), counted=counted
    )
    assert math.isnan(eroded["muscle"]) and eroded["deep_fascia"] == pytest.approx(1.0)
    thin = stacked(thickness=2)
    eroded = boundary_mean_saliency(np.ones(thin.shape), thin, boundary_masks(thin, "eroded"))
    assert math.isnan(eroded["deep_fascia"])


def test_profile_rows_carry_the_boundary_scores_of_maps_and_of_layer_ablation():
    """A linear model whose weight is the boundary map: saliency (|gradient|) is that map, so
    its rows repeat the hand values above; layer ablation with a zeros fill on x = 1 drops
    ``sum of the weights`` over each (perturbed) mask."""
    labels = stacked()
    weight = torch.as_tensor(boundary_map(labels), dtype=torch.float32)[None]
    model = VoxelLinear(weight)
    x = torch.ones(1, 1, *labels.shape)
    config = AttributionConfig(baseline="zeros")
    profiles = profile_scan(model, x, labels, ["saliency", "layer_ablation"], config)
    maps = {row.layer: row for row in profiles["saliency"].rows}
    assert maps["deep_fascia"].mean_saliency == pytest.approx(2 / 3)
    assert maps["deep_fascia"].mean_saliency_eroded == pytest.approx(0.0)
    assert maps["deep_fascia"].mean_saliency_dilated == pytest.approx(0.5)
    assert maps["deep_fascia"].ablation_delta_eroded is None
    ablation = {row.layer: row for row in profiles["layer_ablation"].rows}
    assert ablation["deep_fascia"].ablation_delta == pytest.approx(2 * PER_ROW)
    assert ablation["deep_fascia"].ablation_delta_eroded == pytest.approx(0.0)
    assert ablation["deep_fascia"].ablation_delta_dilated == pytest.approx(2.5 * PER_ROW)
    assert ablation["muscle"].ablation_delta_dilated == pytest.approx(1.75 * PER_ROW)
    assert ablation["deep_fascia"].mean_saliency_eroded is None


def test_shapley_is_not_re_run_for_the_boundary():
    labels = stacked()
    model = VoxelLinear(torch.ones(1, *labels.shape))
    config = AttributionConfig(baseline="zeros")
    result = attribute(
        "layer_shapley", model, torch.ones(1, 1, *labels.shape), layers_map=labels, config=config
    )
    assert "boundary_deltas" not in result.extras
    rows = profile_scan(model, torch.ones(1, 1, *labels.shape), labels, ["layer_shapley"], config)
    assert all(row.ablation_delta_eroded is None for row in rows["layer_shapley"].rows)
