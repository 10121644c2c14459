"""Benchmark inputs made by the platform's own simulator and preprocessing."""

from __future__ import annotations

from bench.scales import Shape
from layer_platform.imaging.preprocess import PreprocessConfig, PreprocessedScan, preprocess_scan
from layer_platform.simulation.config import SimulationConfig
from layer_platform.simulation.scan import simulate_scan
from layer_platform.simulation.subjects import plan_scan_at


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
