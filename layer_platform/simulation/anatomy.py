"""Layer geometry: smooth thickness maps and rippling membranes, rasterised onto any grid.

The skin is depth 0; each layer's bottom is the running sum of the thicknesses above it, and
muscle fills the rest. Geometry is drawn in mm, so every grid (B-mode, SWE) sees the same layers.
Thickness is shared by both classes unless a scenario scales it (``fat_confounding``,
``thickness_effect``): a thicker layer moves every layer below it, so that is never the default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from layer_platform.labels import MEMBRANES, TISSUE_LAYERS, Layer
from layer_platform.simulation.fields import FourierField, Grid, Triple
from layer_platform.simulation.subjects import Stream, stream

#: Layers with a finite thickness; muscle fills the field of view below them.
LAYERS_ABOVE_MUSCLE: tuple[Layer, ...] = TISSUE_LAYERS[:-1]

#: Range of a subject's mean thickness per layer (mm), lumbar region.
THICKNESS_RANGE_MM: dict[Layer, tuple[float, float]] = {
    Layer.DERMIS: (1.5, 3.0),
    Layer.SUPERFICIAL_FAT: (3.0, 10.0),
    Layer.SUPERFICIAL_FASCIA: (0.5, 1.2),
    Layer.DEEP_FAT: (2.0, 8.0),
    Layer.DEEP_FASCIA: (0.8, 2.0),
}

#: Log standard deviation of thickness across the field of view: fat varies most.
THICKNESS_VARIATION: dict[Layer, float] = {
    Layer.DERMIS: 0.08,
    Layer.SUPERFICIAL_FAT: 0.18,
    Layer.SUPERFICIAL_FASCIA: 0.12,
    Layer.DEEP_FAT: 0.22,
    Layer.DEEP_FASCIA: 0.12,
}
THICKNESS_CORRELATION_MM: Triple = (9.0, math.inf, 12.0)

#: Log standard deviation of the left/right difference of a subject's mean thicknesses.
SIDE_ASYMMETRY = 0.06

#: Membranes ripple on a shorter scale than thickness changes, keeping their own thickness.
RIPPLE_MM = 0.25
RIPPLE_CORRELATION_MM: Triple = (3.0, math.inf, 4.0)

MIN_THICKNESS_MM = 0.2


@dataclass(frozen=True)
class Anatomy:
    """One scan's layer geometry (one side of one subject)."""

    mean_thickness_mm: tuple[float, ...]  # per layer in LAYERS_ABOVE_MUSCLE
    thickness_fields: tuple[FourierField, ...]
    ripples: tuple[FourierField, ...]  # per membrane

    def bottoms_mm(self, grid: Grid) -> np.ndarray:
        """Depth of the bottom of each layer above muscle, shape (5, lateral, sweep)."""
        thickness = np.stack(
            [
                mean * np.exp(THICKNESS_VARIATION[layer] * field.on_surface(grid))
                for layer, mean, field in zip(
                    LAYERS_ABOVE_MUSCLE, self.mean_thickness_mm, self.thickness_fields, strict=True
                )
            ]
        )
        bottoms = np.cumsum(np.maximum(thickness, MIN_THICKNESS_MM), axis=0)
        for membrane, ripple in zip(MEMBRANES, self.ripples, strict=True):
            shift = RIPPLE_MM * ripple.on_surface(grid)
            bottoms[membrane - 2] += shift  # the membrane's top: bottom of the layer above
            bottoms[membrane - 1] += shift
        return np.maximum.accumulate(bottoms, axis=0)  # a ripple never reorders layers

    def label_map(self, grid: Grid) -> np.ndarray:
        """Layer code (1..6) of every voxel centre, uint8."""
        depth = grid.axes_mm()[1]
        below = depth[None, None, :, None] >= self.bottoms_mm(grid)[:, :, None, :]
        return (1 + below.sum(axis=0)).astype(np.uint8)

    def fraction_within_layer(self, grid: Grid, labels: np.ndarray) -> np.ndarray:
        """Where each voxel lies between its layer's top (0) and bottom (1), for laminar texture."""
        depth = grid.axes_mm()[1][None, :, None]
        bottoms = self.bottoms_mm(grid)
        edges = np.concatenate(
            [np.zeros_like(bottoms[:1]), bottoms, np.full_like(bottoms[:1], grid.extent_mm[1])]
        )[:, :, None, :]
        index = labels[None].astype(np.intp)
        top = np.take_along_axis(edges, index - 1, axis=0)[0]
        bottom = np.take_along_axis(edges, index, axis=0)[0]
        return np.clip((depth - top) / np.maximum(bottom - top, 1e-6), 0.0, 1.0)


def draw_anatomy(
    seed: int, subject_index: int, side: str, factors: Mapping[Layer, float] | None = None
) -> Anatomy:
    """A subject's mean thicknesses (shared by both sides) with this side's own variation,
    times ``factors`` per layer (a scenario's; the draws do not depend on them)."""
    shared = stream(seed, Stream.ANATOMY, subject_index)
    mean = np.array([shared.uniform(*THICKNESS_RANGE_MM[layer]) for layer in LAYERS_ABOVE_MUSCLE])
    own = stream(seed, Stream.ANATOMY, subject_index, side)
    mean *= np.exp(SIDE_ASYMMETRY * own.standard_normal(len(mean)))
    for layer, factor in (factors or {}).items():
        mean[LAYERS_ABOVE_MUSCLE.index(layer)] *= factor
    return Anatomy(
        mean_thickness_mm=tuple(float(t) for t in mean),
        thickness_fields=tuple(
            FourierField.draw(own, THICKNESS_CORRELATION_MM) for _ in LAYERS_ABOVE_MUSCLE
        ),
        ripples=tuple(FourierField.draw(own, RIPPLE_CORRELATION_MM) for _ in MEMBRANES),
    )
