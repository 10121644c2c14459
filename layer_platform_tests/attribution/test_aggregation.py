"""The per-layer profile against values worked out by hand on a 4 x 6 x 2 label map."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layer_platform.attribution import LayerRow, aggregate_layers
from layer_platform.errors import ScanError
from layer_platform.labels import TISSUE_LAYERS
from layer_platform_tests.attribution.toys import tiny_label_map

# Attribution per label 0..6: background 100 must be ignored, superficial fat is negative, and
# label 5's 7.0 never appears (the map has no deep fascia).
PER_LABEL = np.array([100.0, 1.0, -2.0, 4.0, 0.0, 7.0, 1.0])


def rows_by_layer(rows: list[LayerRow]) -> dict[str, LayerRow]:
    return {row.layer: row for row in rows}


def test_rows_match_hand_computed_values():
    labels = tiny_label_map()
    rows = rows_by_layer(aggregate_layers(PER_LABEL[labels], labels))

    # Tissue: 36 voxels; |a| total = 6*1 + 6*2 + 6*4 + 6*0 + 12*1 = 54. The max, 4, occurs six
    # times, so the 99.5th percentile is 4.
    expected = {  # n_voxels, volume_fraction, mean_saliency, saliency_share, enrichment
        "dermis": (6, 1 / 6, 1 / 4, 6 / 54, (6 / 54) / (1 / 6)),
        "superficial_fat": (6, 1 / 6, 2 / 4, 12 / 54, (12 / 54) / (1 / 6)),
        "superficial_fascia": (6, 1 / 6, 4 / 4, 24 / 54, (24 / 54) / (1 / 6)),
        "deep_fat": (6, 1 / 6, 0.0, 0.0, 0.0),
        "muscle": (12, 1 / 3, 1 / 4, 12 / 54, (12 / 54) / (1 / 3)),
    }
    for layer, (n, fraction, mean, share, enrichment) in expected.items():
        row = rows[layer]
        assert row.n_voxels == n
        assert row.volume_fraction == pytest.approx(fraction)
        assert row.mean_saliency == pytest.approx(mean)
        assert row.saliency_share == pytest.approx(share)
        assert row.enrichment == pytest.approx(enrichment)
        assert row.ablation_delta is None
        assert row.swe_coverage is None, "no SWE in the input: no coverage"


def test_absent_layer_has_zero_share_and_nan_enrichment():
    labels = tiny_label_map()
    fascia = rows_by_layer(aggregate_layers(PER_LABEL[labels], labels))["deep_fascia"]
    assert (fascia.n_voxels, fascia.volume_fraction, fascia.saliency_share) == (0, 0.0, 0.0)
    assert math.isnan(fascia.enrichment)
    assert math.isnan(fascia.mean_saliency)


def test_rows_are_the_six_layers_in_order_and_shares_sum_to_one():
    labels = tiny_label_map()
    attribution = np.random.default_rng(0).normal(size=labels.shape)
    rows = aggregate_layers(attribution, labels)
    assert [(r.layer, r.layer_index) for r in rows] == [(t.key, int(t)) for t in TISSUE_LAYERS]
    assert sum(r.saliency_share for r in rows) == pytest.approx(1.0)
    assert sum(r.volume_fraction for r in rows) == pytest.approx(1.0)


def test_one_hot_voxel_does_not_squash_the_rest():
    labels = np.full((10, 10, 10), 6, dtype=np.int64)
    labels[:, :2] = 1
    attribution = np.ones(labels.shape)
    attribution[5, 5, 5] = 1000.0  # in muscle
    rows = rows_by_layer(aggregate_layers(attribution, labels))
    assert rows["dermis"].mean_saliency == pytest.approx(1.0)
    squashed = rows_by_layer(aggregate_layers(attribution, labels, percentile=100.0))
    assert squashed["dermis"].mean_saliency == pytest.approx(1e-3)


def test_sparse_map_falls_back_to_the_maximum():
    labels = np.full((10, 10, 10), 6, dtype=np.int64)
    attribution = np.zeros(labels.shape)
    attribution[0, 0, 0] = 3.0  # 0.1 % of voxels non-zero: the 99.5th percentile is 0
    (muscle,) = (r for r in aggregate_layers(attribution, labels) if r.layer == "muscle")
    assert muscle.mean_saliency == pytest.approx(1e-3)


def test_ablation_deltas_fill_their_column():
    labels = tiny_label_map()
    deltas = {layer.key: float(layer) for layer in TISSUE_LAYERS}
    rows = aggregate_layers(np.ones(labels.shape), labels, ablation_deltas=deltas)
    assert [r.ablation_delta for r in rows] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_zero_map_gives_nan_shares():
    labels = tiny_label_map()
    rows = aggregate_layers(np.zeros(labels.shape), labels)
    assert all(math.isnan(r.saliency_share) for r in rows)
    assert rows[0].mean_saliency == 0.0


def half_measured_fat() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|a| = 1 in tissue except superficial fat: 2 on sweep 0 (measured), 8 on sweep 1 (not
    measured); deep fat not measured at all."""
    labels = tiny_label_map()
    attribution = np.where(labels > 0, 1.0, 100.0)
    attribution[labels == 2] = np.where(np.arange(2) == 0, 2.0, 8.0)[None, :].repeat(3, 0).ravel()
    measured = np.ones(labels.shape, dtype=bool)
    measured[(labels == 2) & (np.arange(2) == 1)[None, None, :]] = False
    measured[labels == 4] = False
    return attribution, labels, measured


def test_unmeasured_voxels_enter_no_aggregate():
    """Counted tissue: 24 voxels of |a| = 1 and superficial fat's 3 measured voxels of 2 (27);
    the 99.5th percentile is 2, the total 30. All 36 voxels would give the fat (3 x 2 + 3 x 8)
    / 6 = 5 before scaling, 0.625 after (scale 8)."""
    attribution, labels, measured = half_measured_fat()
    assert attribution[labels == 2].tolist() == [2.0, 8.0] * 3
    rows = rows_by_layer(
        aggregate_layers(attribution, labels, measured=measured, swe_measured=measured)
    )
    fat = rows["superficial_fat"]
    assert (fat.n_voxels, fat.volume_fraction) == (6, pytest.approx(1 / 6)), "anatomy stays"
    assert fat.mean_saliency == pytest.approx(1.0)
    assert fat.saliency_share == pytest.approx(6 / 30)
    assert fat.enrichment == pytest.approx((6 / 30) / (3 / 27))
    assert fat.swe_coverage == pytest.approx(0.5)
    assert rows["dermis"].mean_saliency == pytest.approx(0.5)
    assert rows["dermis"].enrichment == pytest.approx((6 / 30) / (6 / 27))
    assert rows["muscle"].swe_coverage == 1.0
    every_voxel = rows_by_layer(aggregate_layers(attribution, labels))["superficial_fat"]
    assert every_voxel.mean_saliency == pytest.approx(0.625)
    assert sum(r.saliency_share for r in rows.values() if np.isfinite(r.saliency_share)) == (
        pytest.approx(1.0)
    )


def test_a_layer_without_a_measured_voxel_has_nan_aggregates_and_zero_coverage():
    attribution, labels, measured = half_measured_fat()
    rows = rows_by_layer(
        aggregate_layers(attribution, labels, measured=measured, swe_measured=measured)
    )
    deep_fat = rows["deep_fat"]
    assert (deep_fat.n_voxels, deep_fat.swe_coverage) == (6, 0.0)
    assert math.isnan(deep_fat.mean_saliency)
    assert math.isnan(deep_fat.saliency_share)
    assert math.isnan(deep_fat.enrichment)
    absent = rows["deep_fascia"]  # as before: share 0, mean and enrichment NaN, coverage NaN
    assert absent.saliency_share == 0.0 and math.isnan(absent.swe_coverage)
    nothing = aggregate_layers(
        attribution, labels, measured=labels == 0, swe_measured=np.zeros(labels.shape, bool)
    )
    assert all(math.isnan(r.mean_saliency) and math.isnan(r.saliency_share) for r in nothing)
    assert [r.swe_coverage for r in nothing if r.n_voxels] == [0.0] * 5


def test_measured_mask_must_be_boolean_and_fit_the_map():
    labels = tiny_label_map()
    with pytest.raises(ValueError, match="measured must be a boolean mask"):
        aggregate_layers(np.ones(labels.shape), labels, measured=np.ones(labels.shape))
    with pytest.raises(ValueError, match="swe_measured must be a boolean mask"):
        aggregate_layers(np.ones(labels.shape), labels, swe_measured=np.ones((4, 6, 3), bool))


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros((4, 6, 2), dtype=np.int64), "no tissue"),
        (np.full((4, 6, 2), 7, dtype=np.int64), "0..6"),
        (np.ones((4, 6, 3), dtype=np.int64), "does not match"),
        (np.ones((4, 6, 2)), "integer"),
    ],
)
def test_bad_label_maps_are_scan_errors(labels: np.ndarray, match: str):
    with pytest.raises(ScanError, match=match):
        aggregate_layers(np.ones((4, 6, 2)), labels)


def test_non_finite_attribution_is_rejected():
    labels = tiny_label_map()
    attribution = np.ones(labels.shape)
    attribution[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        aggregate_layers(attribution, labels)
