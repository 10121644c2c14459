"""The in-memory volume every reader returns: an array in the canonical axis order plus spacing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Canonical axis names, in order. ``depth`` index 0 is the skin (transducer) side.
CANONICAL_AXES: tuple[str, str, str] = ("lateral", "depth", "sweep")


@dataclass(frozen=True)
class Volume:
    """A 3D image in canonical (lateral, depth, sweep) order.

    Args:
        array: voxel values, shape ``(n_lateral, n_depth, n_sweep)``; depth index 0 is the skin.
        spacing: voxel size in mm along (lateral, depth, sweep); every entry > 0.
        metadata: PHI-free facts from the header (format, dtype on disk, exporter hints).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(
                f"a Volume is 3D (lateral, depth, sweep); got shape {self.array.shape}"
            )
        if len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise ValueError(f"spacing must be three positive finite mm values; got {self.spacing}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical field of view along each canonical axis."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing, strict=True))  # type: ignore[return-value]
