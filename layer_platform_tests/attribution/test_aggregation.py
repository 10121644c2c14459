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
