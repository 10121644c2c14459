"""B-mode rendering: layer echotexture seen through the beam, speckle, attenuation, gain, display.

The chain follows the physics: a tissue reflectivity map (dB) → blurred by the point-spread
function → times spatially correlated Rayleigh speckle → depth attenuation left after TGC and the
scan's gain → electronic noise floor → log compression onto 0..255. The pain effect multiplies
the driver layers' reflectivity *after* the blur, so it stays inside them (or fades beyond them by
exactly the configured spill-over) and no other layer's intensity distribution depends on the
label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform.simulation.anatomy import Anatomy
from layer_platform.simulation.config import Effect
from layer_platform.simulation.devices import Device
from layer_platform.simulation.fields import FourierField, Grid, Triple
from layer_platform.simulation.reach import reach
from layer_platform.simulation.subjects import Stream, stream


@dataclass(frozen=True)
class Echotexture:
    """A layer's reflectivity: level and mottle (dB), plus bright septa for fat lobules."""

    level_db: float
    mottle_db: float
    mottle_mm: Triple
    septa_db: float = 0.0
    septa_mm: Triple = (1.0, 1.0, 1.0)


#: Relative to the display top (0 dB). Superficial fat septa run towards the skin (retinacula
#: cutis superficialis), deep fat septa lie flatter; fasciae are bright and thin.
TEXTURES: dict[Layer, Echotexture] = {
    Layer.DERMIS: Echotexture(-22.0, 2.5, (0.6, 0.3, 0.8)),
    Layer.SUPERFICIAL_FAT: Echotexture(-47.0, 2.0, (1.5, 1.0, 1.5), 20.0, (1.6, 2.4, 1.6)),
    Layer.SUPERFICIAL_FASCIA: Echotexture(-8.0, 3.0, (1.5, 0.5, 2.0)),
    Layer.DEEP_FAT: Echotexture(-45.0, 2.0, (2.5, 1.0, 2.5), 18.0, (3.5, 1.2, 3.5)),
    Layer.DEEP_FASCIA: Echotexture(-5.0, 2.0, (2.0, 0.5, 2.5)),
    Layer.MUSCLE: Echotexture(-37.0, 1.5, (2.0, 1.0, 2.0)),
}

#: Width of a septum as a band of its unit-variance field around zero.
SEPTA_WIDTH = 0.15
#: Bright entry echo of the skin surface: amplitude (dB) and decay depth (mm).
ENTRY_ECHO_DB, ENTRY_ECHO_MM = 10.0, 0.15
#: Deep fascia sublayers (thoracolumbar fascia laminae): swing (dB) and count of bright bands.
LAMINA_DB, LAMINAE = 3.0, 2
#: Perimysium: bright lines along the lateral axis between fascicles.
PERIMYSIUM_DB = 14.0
FASCICLE_MM = (1.0, 1.6)
PENNATION_DEG = 6.0
FASCICLE_WARP_MM, FASCICLE_WARP_CORRELATION_MM = 0.5, (5.0, math.inf, 6.0)
FASCICLE_RUN_MM: Triple = (3.0, 0.6, 4.0)

#: Biological variability of each layer's level: per subject, and left/right on top of it.
SUBJECT_TONE_DB, SIDE_TONE_DB = 1.0, 0.5
#: Spatial patchiness of the pain effect (relative), so it changes texture as well as level.
PAIN_PATCHINESS, PAIN_PATCH_MM = 0.5, (2.0, 0.5, 3.0)

#: Point-spread function (Gaussian sigma, mm) and the speckle grain it produces.
PSF_MM: Triple = (0.30, 0.10, 0.60)
SPECKLE_MM: Triple = (0.35, 0.12, 0.80)
#: Attenuation left after time-gain compensation (dB/mm, round trip), scaled per scan.
RESIDUAL_ATTENUATION_DB_MM: dict[Layer, float] = {
    Layer.DERMIS: 0.10,
    Layer.SUPERFICIAL_FAT: 0.20,
    Layer.SUPERFICIAL_FASCIA: 0.20,
    Layer.DEEP_FAT: 0.20,
    Layer.DEEP_FASCIA: 0.20,
    Layer.MUSCLE: 0.10,
}
ATTENUATION_SCALE = (0.5, 1.5)
GAIN_DB = (-4.0, 4.0)
NOISE_FLOOR_DB = -58.0


def _lookup(labels: np.ndarray, per_layer: dict[Layer, float]) -> np.ndarray:
    table = np.zeros(len(Layer))
    for layer, value in per_layer.items():
        table[layer] = value
    return table[labels]


def _reflectivity_db(
    anatomy: Anatomy,
    grid: Grid,
    labels: np.ndarray,
    tone_db: np.ndarray,
    fascicle_mm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Tissue reflectivity before the beam: layer level, mottle, septa, laminae, perimysium."""
    depth = grid.axes_mm()[1][None, :, None]
    db = np.zeros(grid.shape)
    for layer, texture in TEXTURES.items():
        mottle = FourierField.draw(rng, texture.mottle_mm).on_grid(grid)
        value = texture.level_db + tone_db[layer - 1] + texture.mottle_db * mottle
        if texture.septa_db:
            septa = FourierField.draw(rng, texture.septa_mm).on_grid(grid)
            value = value + texture.septa_db * np.exp(-((septa / SEPTA_WIDTH) ** 2))
        np.copyto(db, value, where=labels == layer, casting="unsafe")

    entry_echo = ENTRY_ECHO_DB * np.exp(-np.broadcast_to(depth, grid.shape) / ENTRY_ECHO_MM)
    dermis = labels == Layer.DERMIS
    db[dermis] += entry_echo[dermis]

    fascia = labels == Layer.DEEP_FASCIA
    fraction = anatomy.fraction_within_layer(grid, labels)
    db[fascia] += LAMINA_DB * np.cos(2 * math.pi * LAMINAE * fraction[fascia])

    slope = math.tan(math.radians(rng.uniform(-PENNATION_DEG, PENNATION_DEG)))
    warp = FourierField.draw(rng, FASCICLE_WARP_CORRELATION_MM).on_surface(grid)[:, None, :]
    lateral = grid.axes_mm()[0][:, None, None]
    phase = (depth + slope * lateral + FASCICLE_WARP_MM * warp) / fascicle_mm
    lines = ((1 + np.cos(2 * math.pi * phase)) / 2) ** 8
    runs = 0.5 * (1 + np.tanh(2 * FourierField.draw(rng, FASCICLE_RUN_MM).on_grid(grid) + 0.5))
    muscle = labels == Layer.MUSCLE
    db[muscle] += (PERIMYSIUM_DB * lines * runs)[muscle]
    return db


def _speckle(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Rayleigh amplitude with unit mean power, correlated over the speckle grain."""
    sigma = [mm / s for mm, s in zip(SPECKLE_MM, grid.spacing, strict=True)]
    real, imag = (
        gaussian_filter(rng.standard_normal(grid.shape, dtype=np.float32).astype(np.float64), sigma)
        for _ in range(2)
    )
    magnitude = np.hypot(real, imag)
    return magnitude / np.sqrt(np.mean(magnitude**2))


def _attenuation_db(grid: Grid, labels: np.ndarray, scale: float) -> np.ndarray:
    """Round-trip loss accumulated from the skin to each voxel."""
    per_voxel = _lookup(labels, RESIDUAL_ATTENUATION_DB_MM) * (scale * grid.spacing[1])
    return np.cumsum(per_voxel, axis=1) - per_voxel / 2


def render_bmode(
    anatomy: Anatomy,
    grid: Grid,
    labels: np.ndarray,
    device: Device,
    pain: Effect,
    *,
    seed: int,
    subject_index: int,
    side: str,
) -> np.ndarray:
    """One scan's B-mode volume, uint8 on ``grid``; ``pain.size`` is in dB: the level change
    (``level``) or the standard deviation of a zero-mean mottle added to the drivers (``texture``).
    """
    shared = stream(seed, Stream.ECHO, subject_index)
    rng = stream(seed, Stream.ECHO, subject_index, side)
    tone_db = SUBJECT_TONE_DB * shared.standard_normal(len(TISSUE_LAYERS))
    tone_db += SIDE_TONE_DB * rng.standard_normal(len(TISSUE_LAYERS))
    fascicle_mm = shared.uniform(*FASCICLE_MM)

    reflectivity = 10 ** (_reflectivity_db(anatomy, grid, labels, tone_db, fascicle_mm, rng) / 20)
    sigma = [mm / s for mm, s in zip(PSF_MM, grid.spacing, strict=True)]
    echo = gaussian_filter(reflectivity, sigma)

    patches = FourierField.draw(rng, PAIN_PATCH_MM).on_grid(grid)
    if pain.layers and pain.size:
        weight = reach(labels, pain.layers, pain.spill_mm, grid.spacing)
        touched = weight > 0
        if pain.kind == "texture":  # zero mean over the drivers: contrast changes, level not
            pattern = patches[touched] - patches[np.isin(labels, pain.layers)].mean()
        else:
            pattern = 1 + PAIN_PATCHINESS * patches[touched]
        echo[touched] *= 10 ** (pain.size * weight[touched] * pattern / 20)

    echo *= _speckle(rng, grid)
    gain_db = rng.uniform(*GAIN_DB) + device.gain_offset_db
    echo *= 10 ** ((gain_db - _attenuation_db(grid, labels, rng.uniform(*ATTENUATION_SCALE))) / 20)
    noise = 10 ** (NOISE_FLOOR_DB / 20) * rng.rayleigh(np.sqrt(0.5), grid.shape)
    level_db = 20 * np.log10(np.hypot(echo, noise))
    grey = 255 * (level_db + device.dynamic_range_db) / device.dynamic_range_db
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
