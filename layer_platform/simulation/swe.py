"""Shear-wave elastography: per-layer stiffness (kPa) on the scanner's coarse SWE grid.

Each SWE voxel reports the tissue at its centre (no mixing across layers), so a stiffness change
planted in the driver layer stays in that layer (or fades beyond it by the configured spill-over);
the platform's resampling onto the B-mode grid
is what blurs it, as it would with a real scanner. Near the probe there is no estimate (0 kPa),
and patches where the shear wave was lost are NaN.
"""

from __future__ import annotations

import numpy as np

from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform.simulation.config import Effect
from layer_platform.simulation.fields import FourierField, Grid
from layer_platform.simulation.reach import reach
from layer_platform.simulation.subjects import Stream, stream

#: Young's modulus by layer (kPa): soft fat, stiff fasciae, resting erector spinae in between.
STIFFNESS_KPA: dict[Layer, float] = {
    Layer.DERMIS: 40.0,
    Layer.SUPERFICIAL_FAT: 5.0,
    Layer.SUPERFICIAL_FASCIA: 30.0,
    Layer.DEEP_FAT: 7.0,
    Layer.DEEP_FASCIA: 60.0,
    Layer.MUSCLE: 20.0,
}
#: Log standard deviation of a layer's stiffness between subjects, and left/right on top.
SUBJECT_STIFFNESS_SD, SIDE_STIFFNESS_SD = 0.15, 0.05
#: Estimation noise (log scale): a smooth component over a few mm and a per-voxel one.
SMOOTH_NOISE_SD, SMOOTH_NOISE_MM, VOXEL_NOISE_SD = 0.20, (2.0, 1.5, 3.0), 0.08
#: Depth (mm) above which the scanner reports no estimate.
NEAR_FIELD_MM = (1.5, 3.0)
#: Signal-loss patches: mean count per scan and ellipsoid semi-axes (mm).
DROPOUTS_PER_SCAN, DROPOUT_RADIUS_MM = 1.2, (1.5, 4.0)
MAX_KPA = 300.0


def _dropouts(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    lateral, depth, sweep = (
        axis.reshape(shape)
        for axis, shape in zip(grid.axes_mm(), ((-1, 1, 1), (1, -1, 1), (1, 1, -1)), strict=True)
    )
    lost = np.zeros(grid.shape, dtype=bool)
    for _ in range(rng.poisson(DROPOUTS_PER_SCAN)):
        centre = rng.uniform(0.0, grid.extent_mm)
        radius = rng.uniform(*DROPOUT_RADIUS_MM, size=3)
        lost |= (
            ((lateral - centre[0]) / radius[0]) ** 2
            + ((depth - centre[1]) / radius[1]) ** 2
            + ((sweep - centre[2]) / radius[2]) ** 2
        ) <= 1.0
    return lost


def render_swe(
    grid: Grid, labels: np.ndarray, pain: Effect, *, seed: int, subject_index: int, side: str
) -> np.ndarray:
    """Stiffness (kPa, float32) on the SWE ``grid`` whose layer codes are ``labels``.

    ``pain.size`` is the relative stiffness change of the driver layer (0.4 = 40 % stiffer).
    """
    shared = stream(seed, Stream.STIFFNESS, subject_index)
    rng = stream(seed, Stream.STIFFNESS, subject_index, side)
    log_factor = SUBJECT_STIFFNESS_SD * shared.standard_normal(len(TISSUE_LAYERS))
    log_factor += SIDE_STIFFNESS_SD * rng.standard_normal(len(TISSUE_LAYERS))
    stiffness = np.zeros(len(Layer))
    for layer, kpa in STIFFNESS_KPA.items():
        stiffness[layer] = kpa * np.exp(log_factor[layer - 1])
    tissue = stiffness[labels]
    if pain.layers and pain.size:
        weight = reach(labels, pain.layers, pain.spill_mm, grid.spacing).astype(np.float64)
        tissue *= 1.0 + pain.size * weight

    noise = SMOOTH_NOISE_SD * FourierField.draw(rng, SMOOTH_NOISE_MM).on_grid(grid)
    noise += VOXEL_NOISE_SD * rng.standard_normal(grid.shape)
    kpa = np.minimum(tissue * np.exp(noise), MAX_KPA)
    kpa[:, grid.axes_mm()[1] < rng.uniform(*NEAR_FIELD_MM), :] = 0.0
    kpa[_dropouts(rng, grid)] = np.nan
    return kpa.astype(np.float32)
