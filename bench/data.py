"""Benchmark inputs made by the platform's own simulator and preprocessing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.scales import Shape
from layer_platform.classification.data import Item, Scan
from layer_platform.classification.modes import eligible_scans, make_items, uses_swe
from layer_platform.imaging.preprocess import PreprocessConfig, PreprocessedScan, preprocess_scan
from layer_platform.simulation.config import SimulationConfig
from layer_platform.simulation.scan import simulate_scan
from layer_platform.simulation.subjects import SIDES, plan_scan_at


def preprocess_config(shape: Shape) -> PreprocessConfig:
    """The platform preset with this shape, else the simulator's field of view over ``shape``."""
    for preset in (PreprocessConfig.cpu(), PreprocessConfig.gpu()):
        if preset.target_shape == tuple(shape):
            return preset
    fov = SimulationConfig().field_of_view_mm
    spacing = tuple(f / n for f, n in zip(fov, shape, strict=True))
    return PreprocessConfig(target_spacing=spacing, target_shape=shape)


def grid_config(name: str) -> PreprocessConfig:
    """``cpu`` / ``gpu``: the platform's presets; ``tiny``: 16 x 48 x 8 for the smoke test."""
    if name == "cpu":
        return PreprocessConfig.cpu()
    if name == "gpu":
        return PreprocessConfig.gpu()
    if name == "tiny":
        return preprocess_config((16, 48, 8))
    raise ValueError(f"unknown preprocessing grid {name!r}; expected cpu, gpu or tiny")


def simulated_scans(shape: Shape, count: int, seed: int) -> list[PreprocessedScan]:
    """``count`` simulated scans (B-mode and the rendered layer map) on the ``shape`` grid."""
    config = SimulationConfig(n_subjects=max(1, (count + 1) // 2), seed=seed)
    grid = preprocess_config(shape)
    scans = []
    for n in range(count):
        plan = plan_scan_at(config, n)
        sim = simulate_scan(config, plan.subject.index, plan.side)
        scans.append(preprocess_scan(sim.bmode, None, sim.layers, grid))
    return scans


def classifier_items(config: SimulationConfig, shape: Shape, mode: str) -> list[Item]:
    """A simulated cohort's ``mode`` items on the ``shape`` grid, both sides of every subject
    (scans without SWE drop out of the SWE modes, as in the platform)."""
    return labelled_items(config, shape, mode)[0]


def labelled_items(
    config: SimulationConfig, shape: Shape, mode: str
) -> tuple[list[Item], dict[str, np.ndarray]]:
    """``classifier_items``, and each scan's six-layer label map on the grid by scan id (what
    attribution aggregates in)."""
    grid = preprocess_config(shape)
    scans, layers = [], {}
    for subject in range(config.n_subjects):
        for side in SIDES:
            sim = simulate_scan(config, subject, side)
            swe = sim.swe if uses_swe(mode) else None
            prep = preprocess_scan(sim.bmode, swe, sim.layers, grid)
            plan = sim.plan
            layers[plan.scan_id] = prep.layers
            scans.append(
                Scan(
                    plan.scan_id,
                    plan.subject.subject_id,
                    plan.subject.label,
                    prep.bmode,
                    prep.swe,
                    prep.swe_valid,
                )
            )
    return make_items(eligible_scans(scans, mode)[0], mode), layers


def early_stopping_split(items: Sequence[Item]) -> tuple[list[Item], list[Item]]:
    """Training and validation items: every fifth subject of each label validates."""
    held_out = set()
    for label in sorted({i.label for i in items}):
        subjects = sorted({i.subject_id for i in items if i.label == label})
        held_out.update(subjects[::5])
    return (
        [i for i in items if i.subject_id not in held_out],
        [i for i in items if i.subject_id in held_out],
    )
