"""Layer-deletion faithfulness on a toy model whose MP evidence sits in one layer only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from layer_platform.attribution import AttributionConfig
from layer_platform.attribution.ablation import layer_fill
from layer_platform.attribution.faithfulness import (
    FaithfulnessSettings,
    area_between,
    layer_order,
    road_impute,
    scan_faithfulness,
)
from layer_platform.attribution.faithfulness_run import _still_current, faithfulness_table
from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform.statistics import faithfulness_markdown, format_ranking
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.attribution.toys import VoxelLinear, six_layer_map

#: Scores whose order puts deep fascia first (a layer value), and last (a map score).
DEEP_FASCIA_FIRST = {
    layer.key: 3.0 if layer == Layer.DEEP_FASCIA else 0.0 for layer in TISSUE_LAYERS
}
DEEP_FASCIA_LAST = {
    layer.key: 0.0 if layer == Layer.DEEP_FASCIA else float(7 - layer) for layer in TISSUE_LAYERS
}


def deep_fascia_model(labels: np.ndarray, bias: float = -1.0) -> VoxelLinear:
    """logit = 0.25 * sum(x over deep fascia's 6 voxels) + bias: only layer 5 matters."""
    weight = torch.zeros(1, *labels.shape)
    weight[0][torch.as_tensor(labels == Layer.DEEP_FASCIA)] = 0.25
    return VoxelLinear(weight, bias)


def run(model: VoxelLinear, labels: np.ndarray, scores: dict, **settings) -> dict:
    x = torch.full((1, 1, *labels.shape), 2.0)
    _, _, _, fill = layer_fill("test", x, None, labels, AttributionConfig(baseline="zeros"))
    found = scan_faithfulness(model, x, labels, fill, scores, FaithfulnessSettings(**settings))
    return {(r.method, r.variant): r for r in found}


@pytest.mark.parametrize("variant", ["deletion", "road"])
def test_the_true_order_beats_random_and_its_reverse_loses(variant: str) -> None:
    labels = six_layer_map()
    found = run(
        deep_fascia_model(labels),
        labels,
        {"layer_ablation": DEEP_FASCIA_FIRST, "saliency": DEEP_FASCIA_LAST},
        n_random_orders=8,
    )
    first, last = found[("layer_ablation", variant)], found[("saliency", variant)]
    # f(x) = 2 (MP, p 0.88); with deep fascia removed (zeros, or imputed from 2s around it)
    # f = -1 (p 0.27) or f stays 2: the curve is a step where deep fascia goes
    high, low = 1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(1.0))
    if variant == "deletion":
        np.testing.assert_allclose(first.curve, [high, *[low] * 6], rtol=1e-6)
        np.testing.assert_allclose(last.curve, [high] * 6 + [low], rtol=1e-6)
        assert first.area > 0.2 and last.area < -0.2
    else:  # imputed from its neighbours (all 2), deep fascia still reads 2: nothing removed
        assert abs(first.area) < 0.02 and abs(last.area) < 0.02
    np.testing.assert_allclose(first.random_curve, last.random_curve)  # same random orders


def test_road_removes_evidence_that_differs_from_the_neighbours() -> None:
    """Deep fascia brighter (4) than the tissue around it (2): ROAD imputes ~2 there."""
    labels = six_layer_map()
    x = torch.full((1, 1, *labels.shape), 2.0)
    x[0, 0][torch.as_tensor(labels == Layer.DEEP_FASCIA)] = 4.0
    model = deep_fascia_model(labels, bias=-4.0)  # f(x) = 2, f(deep fascia at ~2) = -1
    _, _, _, fill = layer_fill("test", x, None, labels, AttributionConfig(baseline="zeros"))
    scores = {"layer_ablation": DEEP_FASCIA_FIRST, "saliency": DEEP_FASCIA_LAST}
    found = {
        (r.method, r.variant): r.area for r in scan_faithfulness(model, x, labels, fill, scores)
    }
    assert found[("layer_ablation", "road")] > 0.2
    assert found[("saliency", "road")] < -0.2


def test_signed_layer_values_are_turned_toward_the_predicted_class() -> None:
    present = list(TISSUE_LAYERS)
    deltas = {layer.key: float(layer) for layer in TISSUE_LAYERS}  # muscle most MP evidence
    assert layer_order(deltas, present, "layer_ablation", 1.0)[0] == Layer.MUSCLE
    assert layer_order(deltas, present, "layer_ablation", -1.0)[0] == Layer.DERMIS
    # unsigned map scores: the largest first whatever the class; NaN (no evidence) last
    shares = {**deltas, "muscle": float("nan")}
    order = layer_order(shares, present, "integrated_gradients", -1.0)
    assert order[0] == Layer.DEEP_FASCIA and order[-1] == Layer.MUSCLE
    assert layer_order({}, present, "saliency", 1.0) is None


def test_area_is_zero_for_the_random_curve_and_bounded() -> None:
    curve = np.array([0.9, 0.5, 0.3, 0.1])
    assert area_between(curve, curve) == 0.0
    assert area_between(np.zeros(4), np.ones(4)) == pytest.approx(1.0)


def test_every_coalition_is_evaluated_once_per_removal() -> None:
    labels = six_layer_map()
    model = deep_fascia_model(labels)
    run(model, labels, {"layer_ablation": DEEP_FASCIA_FIRST}, n_random_orders=0)
    assert model.samples == 1  # no random orders: nothing to compare, only f(x) ran
    model = deep_fascia_model(labels)
    run(model, labels, {"layer_ablation": DEEP_FASCIA_FIRST}, n_random_orders=3, batch=64)
    # f(x), then per removal one pass over at most 1 + 4 x 6 distinct coalitions
    assert model.calls == 3 and model.samples <= 1 + 2 * 25


def test_road_imputation_keeps_kept_voxels_and_interpolates_removed_ones() -> None:
    labels = six_layer_map()
    depth = np.arange(labels.shape[1], dtype=np.float32)
    x = np.broadcast_to(10.0 * depth[None, :, None], labels.shape)[None].copy()  # a ramp
    removed = (labels == Layer.SUPERFICIAL_FASCIA) | (labels == Layer.DEEP_FAT)
    rng = np.random.default_rng(0)
    out = road_impute(x, removed, rng, noise=0.0)
    np.testing.assert_array_equal(out[0][~removed], x[0][~removed])
    np.testing.assert_allclose(out[0][removed], x[0][removed])  # linear: the ramp comes back
    bottom = labels == Layer.MUSCLE  # nothing kept below: the last kept voxel's value
    np.testing.assert_allclose(road_impute(x, bottom, rng, noise=0.0)[0][bottom], 40.0)
    noisy = road_impute(x, removed, rng, noise=0.1)
    assert not np.allclose(noisy[0][removed], x[0][removed])
    np.testing.assert_array_equal(noisy[0][~removed], x[0][~removed])


def test_road_keeps_unmeasured_swe_voxels_unmeasured() -> None:
    labels = six_layer_map()
    swe = np.full(labels.shape, 5.0, np.float32)
    swe[:, 2] = 0.0  # the superficial fascia row: not measured
    swe[:, 1] = 50.0  # the superficial fat row: measured, far stiffer
    x = np.stack([np.ones(labels.shape, np.float32), swe])
    removed = (labels == Layer.SUPERFICIAL_FAT) | (labels == Layer.SUPERFICIAL_FASCIA)
    out = road_impute(x, removed, np.random.default_rng(0), noise=0.0, no_signal_channels=(1,))
    assert (out[1][labels == Layer.SUPERFICIAL_FASCIA] == 0).all()
    # interpolated from measured rows 0 and 3 (both 5): the unmeasured row 2 is no neighbour
    np.testing.assert_allclose(out[1][labels == Layer.SUPERFICIAL_FAT], 5.0)


def test_table_averages_subjects_first_and_reads_beside_the_ranking() -> None:
    """Subject A's two scans count once: mean of (0.1 + 0.3) / 2 and 0.5 is 0.35."""
    per_scan = pd.DataFrame(
        {
            "input_mode": "bmode",
            "method": "layer_ablation",
            "variant": ["deletion"] * 3 + ["road"] * 3,
            "scan_id": ["a1", "a2", "b1"] * 2,
            "subject_id": ["A", "A", "B"] * 2,
            "area": [0.1, 0.3, 0.5, -0.2, -0.2, 0.1],
        }
    )
    table = faithfulness_table(per_scan, FaithfulnessSettings(), n_boot=200)
    deletion = table[table["variant"] == "deletion"].iloc[0]
    assert deletion["mean_area"] == pytest.approx(0.35)
    assert (deletion["n_scans"], deletion["n_subjects"]) == (3, 2)
    assert deletion["ci_low"] <= 0.35 <= deletion["ci_high"]
    assert table.loc[table["variant"] == "road", "share_above_random"].item() == pytest.approx(
        1 / 3
    )
    shown = faithfulness_markdown(table)
    assert "| bmode | layer_ablation | +0.350 (" in shown and "| 3 |" in shown
    ranking = pd.DataFrame(
        {
            "input_mode": "bmode",
            "method": "layer_ablation",
            "is_default_method": True,
            "layer": [layer.key for layer in TISSUE_LAYERS],
            "rank": range(1, 7),
            "score": np.linspace(1, 0, 6),
            "verdict": "no layer stands out",
        }
    )
    text = format_ranking(ranking, faithfulness=table).splitlines()
    below = text[text.index("  layer_ablation: no layer stands out") + 1]
    assert below.startswith("    faithfulness on 3 held-out scans: deletion +0.350 (")
    assert ", road -0.050 (" in below  # subjects A (-0.2) and B (0.1)


def test_stored_rows_are_reused_only_while_the_held_out_rows_are_unchanged(tmp_path: Path) -> None:
    """A summary re-run reuses a mode's areas unless its held-out rows, champion version,
    protocol or scan counts changed since they were computed."""
    settings = FaithfulnessSettings()
    at = pd.Timestamp("2026-01-02 00:00")
    warehouse = Warehouse(tmp_path / "w.duckdb")
    table = pd.DataFrame(
        {
            "input_mode": ["bmode", "swe"],
            "method": ["layer_ablation"] * 2,
            "variant": ["deletion"] * 2,
            "n_scans": [2, 1],
            "n_subjects": [2, 1],
            "mean_area": [0.3, 0.1],
            "ci_low": [0.1, 0.0],
            "ci_high": [0.5, 0.2],
            "share_above_random": [1.0, 1.0],
            "protocol": [settings.protocol()] * 2,
        }
    )
    warehouse.replace(
        "method_faithfulness",
        table.assign(model_name="m", model_version="1", computed_at=at),
        key=None,
    )
    frame = pd.DataFrame(
        {
            "input_mode": ["bmode", "bmode", "swe"],
            "model_version": ["1", "1", "1"],
            "method": ["layer_ablation"] * 3,
            "scan_id": ["a", "b", "a"],
            "explained_by": ["held_out"] * 3,
            "computed_at": [at - pd.Timedelta("1h")] * 3,
        }
    )
    kept = _still_current(warehouse, frame, settings)
    assert sorted(kept["input_mode"]) == ["bmode", "swe"]
    assert kept["mean_area"].tolist() == table["mean_area"].tolist()
    newer = frame.assign(computed_at=[at + pd.Timedelta("1h"), at, at])
    assert _still_current(warehouse, newer, settings)["input_mode"].tolist() == ["swe"]
    assert _still_current(warehouse, frame.assign(model_version="2"), settings).empty
    other = FaithfulnessSettings(n_random_orders=settings.n_random_orders + 1)
    assert _still_current(warehouse, frame, other).empty
    grown = pd.concat([frame, frame.iloc[[2]].assign(scan_id="c")], ignore_index=True)
    assert _still_current(warehouse, grown, settings)["input_mode"].tolist() == ["bmode"]
