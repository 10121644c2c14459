"""Simulator scenarios (spill-over, texture and two-layer drivers, confounders, unilateral pain,
thickness): each planted where it belongs and nowhere else, and all off by default."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from layer_platform.simulation import SimulatedScan, SimulationConfig, simulate_scan


def _digest(scan: SimulatedScan) -> str:
    """Every rendered voxel, voxel size and scan.json field of one scan."""
    h = hashlib.sha256()
    for volume in (scan.bmode, scan.layers, scan.swe):
        if volume is not None:
            h.update(np.ascontiguousarray(volume.array).tobytes())
            h.update(repr(volume.spacing).encode())
    h.update(repr(sorted(scan.scan_json().items())).encode())
    return h.hexdigest()[:16]


#: Computed with the simulator before any scenario existed: the defaults must keep rendering
#: these cohorts bit for bit (a control and an MP subject, with and without SWE, two scales).
BEFORE_SCENARIOS = {
    (2.0, 0, "left"): "9af6304d3bd9c915",
    (2.0, 0, "right"): "f732978b0a4c4766",
    (2.0, 1, "left"): "da9653c4a88a80aa",
    (2.0, 3, "right"): "9fb631438a415532",
    (1.0, 0, "left"): "1042f3cb40764f79",
}


@pytest.mark.parametrize(("scale", "index", "side"), sorted(BEFORE_SCENARIOS))
def test_default_config_renders_as_before_the_scenarios(
    scale: float, index: int, side: str
) -> None:
    scan = simulate_scan(SimulationConfig(spacing_scale=scale), index, side)
    assert _digest(scan) == BEFORE_SCENARIOS[scale, index, side]
