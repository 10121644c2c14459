"""The in-memory volume every reader returns: an array in the canonical axis order plus geometry.

Geometry convention (one, for every format): physical coordinates are LPS millimetres (x to the
patient's Left, y Posterior, z Superior), as DICOM, ITK, SimpleITK and 3D Slicer's files use.
``origin`` is the LPS position of the centre of voxel (0, 0, 0); ``direction`` is a 3 x 3 matrix
whose column ``c`` is the unit vector of canonical axis ``c`` (lateral, depth, sweep) in LPS, so
voxel index ``(i, j, k)`` lies at ``origin + direction @ (spacing * (i, j, k))``. NIfTI stores
RAS: its affine is ``diag(-1, -1, 1, 1) @ Volume.affine``, and readers convert on the way in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Canonical axis names, in order. ``depth`` index 0 is the skin (transducer) side.
CANONICAL_AXES: tuple[str, str, str] = ("lateral", "depth", "sweep")

Matrix3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]

#: Direction of a volume whose file states none: canonical axes along L, P, S.
IDENTITY_DIRECTION: Matrix3 = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

#: Flips x and y: LPS ↔ RAS (its own inverse).
LPS_RAS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def as_matrix3(matrix: Any) -> Matrix3:
    """A 3 x 3 array-like as the hashable nested tuple ``Volume.direction`` holds."""
    rows = np.asarray(matrix, dtype=float).reshape(3, 3)
    return tuple(tuple(float(v) for v in row) for row in rows)  # type: ignore[return-value]


@dataclass(frozen=True)
class Volume:
    """A 3D image in canonical (lateral, depth, sweep) order, with its place in LPS space.

    Args:
        array: voxel values, shape ``(n_lateral, n_depth, n_sweep)``; depth index 0 is the skin.
        spacing: voxel size in mm along (lateral, depth, sweep); every entry > 0.
        metadata: PHI-free facts from the header (format, dtype on disk, exporter hints).
        origin: LPS mm of the centre of voxel (0, 0, 0) (module docstring).
        direction: columns are the LPS unit vectors of the canonical axes (module docstring).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: Matrix3 = IDENTITY_DIRECTION

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(
                f"a Volume is 3D (lateral, depth, sweep); got shape {self.array.shape}"
            )
        if len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise ValueError(f"spacing must be three positive finite mm values; got {self.spacing}")
        origin = tuple(float(v) for v in self.origin)
        if len(origin) != 3 or not np.isfinite(origin).all():
            raise ValueError(f"origin must be three finite mm values; got {self.origin}")
        direction = as_matrix3(self.direction)
        if not np.isfinite(direction).all() or abs(np.linalg.det(direction)) < 1e-6:
            raise ValueError("direction must be an invertible 3 x 3 matrix of unit axis vectors")
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical field of view along each canonical axis."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing, strict=True))  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        """4 x 4 matrix from voxel index (i, j, k, 1) to LPS mm (voxel centres)."""
        affine = np.eye(4)
        affine[:3, :3] = np.asarray(self.direction) * np.asarray(self.spacing)
        affine[:3, 3] = self.origin
        return affine
