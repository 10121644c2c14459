"""Benchmark 12's agreement measures: what counts as a changed layer order and a map's agreement."""

from __future__ import annotations

import numpy as np
import torch

from bench.attribution_precision import Autocast, comparable, map_correlation, order_changes
from layer_platform.classification.network import SmallCNN3D
from layer_platform.compute import Precision


def test_order_changes_counts_discordant_pairs_of_finite_layers() -> None:
    a = np.array([3.0, 2.0, 1.0, np.nan])
    assert order_changes(a, a * 10) == 0
    assert order_changes(a, np.array([2.0, 3.0, 1.0, 0.0])) == 1
    assert order_changes(a, -a) == 3
    assert order_changes(a, np.array([3.0, 3.0, 1.0, 5.0])) == 1  # a tie is an order too


def test_map_correlation_of_identical_scaled_and_constant_maps() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 5, 3))
    assert map_correlation(a, 2 * a + 1) > 0.999
    assert map_correlation(a, -a) < -0.999
    flat = np.zeros_like(a)
    assert map_correlation(flat, flat) == 1.0
    assert map_correlation(a, flat) == 0.0


def test_autocast_wrapper_returns_float32_logits_close_to_the_model_and_leaves_it_intact() -> None:
    torch.manual_seed(0)
    model = SmallCNN3D(1, (4, 8)).eval()
    x = torch.rand(2, 1, 8, 16, 8)
    before = model(x)
    wrapped = Autocast(model, Precision(torch.device("cpu"), torch.bfloat16)).eval()
    low = wrapped(x)
    assert low.dtype == torch.float32
    assert torch.allclose(low, before, atol=0.05)
    assert model(x).equal(before)  # the wrapper works on a copy
    assert next(model.parameters()).is_contiguous()


def test_a_scan_without_a_finite_float32_map_leaves_the_comparison_in_both_precisions() -> None:
    a, b, c = object(), object(), object()  # stand-ins for profiles: only identity matters here
    maps = {"float32": [a, None, b], "bfloat16": [c, a, None]}
    kept, left_out = comparable(maps)  # type: ignore[arg-type]
    assert kept == {"float32": [a, b], "bfloat16": [c, None]}
    assert left_out == 1
    none, left_out = comparable({"float32": [None], "bfloat16": [a]})  # type: ignore[list-item]
    assert none == {"float32": [], "bfloat16": []} and left_out == 1
