"""Resampling onto the working grid: axis-aligned grids that share their corner (0 mm).

Voxel ``n`` covers ``[n, n + 1) * spacing`` mm on every grid (the simulator's convention), so a
destination voxel centre maps to a source index per axis alone, and each axis is resampled on
its own.
"""

from __future__ import annotations

import numpy as np

from layer_platform.imaging.grid import Shape, Triple


def resampled_shape(extent_mm: Triple, spacing: Triple) -> Shape:
    """Voxels of ``spacing`` that best cover ``extent_mm`` (at least one per axis)."""
    return tuple(max(1, round(e / s)) for e, s in zip(extent_mm, spacing, strict=True))  # type: ignore[return-value]


def _source_centres(first: int, n_destination: int, ratio: float) -> np.ndarray:
    """Where destination voxels ``first`` … ``first + n_destination - 1`` have their centres on
    the source axis, in source voxel indices (``ratio`` = destination / source spacing; both
    grids start at the same corner)."""
    return (np.arange(first, first + n_destination) + 0.5) * ratio - 0.5


def resample(
    channels: np.ndarray,
    spacing: Triple,
    target_spacing: Triple,
    shape: Shape,
    mode: str,
    first: Shape = (0, 0, 0),
) -> np.ndarray:
    """Resample ``(C, L, D, S)`` from ``spacing`` onto a ``target_spacing`` grid of ``shape``.

    Both grids start at the same corner; destination voxels outside the source's field of view
    take the nearest edge value (the crop/pad step decides what lies beyond the scan). ``first``
    is the destination voxel the result starts at: a crop window is resampled alone, without
    the voxels the crop would throw away.
    ``bilinear`` is trilinear interpolation and ``nearest`` takes the voxel whose centre is
    nearest (ties to even), the values MONAI's ``SpatialResample`` gives with border padding
    (``layer_platform_tests/imaging`` compares them). The grids are axis-aligned, so each axis
    is resampled on its own: a gather and a weighted sum per axis instead of a 3D
    ``grid_sample``, about 20x faster on a CPU, where resampling was three quarters of
    preprocessing (``docs/results/benchmarks.md``).
    """
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"unknown resampling mode {mode!r}; use 'bilinear' or 'nearest'")
    out = np.asarray(channels)
    # The axis that shrinks most goes first and the one that grows most last, so the passes
    # before the last work on the smallest arrays (any order gives the same up to rounding).
    axes = sorted(range(3), key=lambda a: shape[a] / out.shape[a + 1])
    for axis in axes:
        source, target, n = spacing[axis], target_spacing[axis], shape[axis]
        size = out.shape[axis + 1]
        centres = _source_centres(first[axis], n, target / source)
        if mode == "nearest":
            out = np.take(out, np.clip(np.rint(centres), 0, size - 1).astype(np.intp), axis + 1)
            continue
        clamped = np.clip(centres, 0, size - 1)
        low = np.floor(clamped).astype(np.intp)
        high = np.minimum(low + 1, size - 1)
        weight = (
            (clamped - low)
            .astype(out.dtype)
            .reshape([-1 if d == axis + 1 else 1 for d in range(out.ndim)])
        )
        below = np.take(out, low, axis + 1)
        out = below + (np.take(out, high, axis + 1) - below) * weight  # lerp: 3 passes, not 4
    return out
