"""Where the working grid lies in the scan's own space: the record preprocessing leaves behind.

Preprocessing resamples the native (lateral, depth, sweep) grid to the working spacing with both
grids starting at the same corner, then crops or pads to the working shape. Neither step rotates
anything, so the working grid is the native grid's direction with another spacing and origin:

    native index of working voxel n = ((n + shift) + 0.5) * working_spacing / native_spacing - 0.5

where ``shift`` is the first resampled voxel kept (negative: padding before the scan). The
:class:`GridTransform` stores exactly what that needs, as JSON beside the preprocessed files, so
working-grid outputs get their true LPS geometry and can be put back on the native grid.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from layer_platform.io.volume import Matrix3, Volume, as_matrix3

Triple = tuple[float, float, float]
Shape = tuple[int, int, int]

#: Canonical axis index of depth: crop/pad happens at its deep end only.
DEPTH_AXIS = 1


def crop_pad_plan(have: Shape, want: Shape) -> tuple[list[int], list[int], list[int]]:
    """Crop starts, crop ends and pad borders (before, after per axis) taking ``have`` to ``want``.

    Depth keeps index 0 (the skin) and loses or gains voxels at its deep end; lateral and sweep
    are centred (an odd surplus loses/gains its extra voxel at the far end).
    """
    starts, ends, borders = [], [], []
    for axis, (n_have, n_want) in enumerate(zip(have, want, strict=True)):
        lead = 0 if axis == DEPTH_AXIS else abs(n_have - n_want) // 2
        start = lead if n_have > n_want else 0
        before = lead if n_have < n_want else 0
        starts.append(start)
        ends.append(start + min(n_have, n_want))
        borders += [before, max(n_want - n_have, 0) - before]
    return starts, ends, borders


@dataclass(frozen=True)
class GridTransform:
    """The native grid of a scan and how the working grid was cut from it (module docstring).

    Args:
        native_shape, native_spacing, native_origin, native_direction: the B-mode as read
            (canonical axis order, LPS; see ``layer_platform.io.volume``).
        working_spacing: mm per working voxel.
        working_shape: voxels of the working grid.
        shift: per axis, the resampled voxel at working index 0 (negative: padded before).
    """

    native_shape: Shape
    native_spacing: Triple
    native_origin: Triple
    native_direction: Matrix3
    working_spacing: Triple
    working_shape: Shape
    shift: tuple[int, int, int]

    def __post_init__(self) -> None:
        # Frozen as tuples of the right type whatever arrived (JSON gives lists).
        for name in ("native_shape", "working_shape", "shift"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        for name in ("native_spacing", "native_origin", "working_spacing"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        object.__setattr__(self, "native_direction", as_matrix3(self.native_direction))

    @classmethod
    def of(cls, native: Volume, working_spacing: Triple, resampled: Shape, working: Shape):
        """The record for ``native`` resampled to ``resampled`` voxels, then cropped/padded."""
        starts, _, borders = crop_pad_plan(resampled, working)
        shift = tuple(start - before for start, before in zip(starts, borders[::2], strict=True))
        return cls(
            native.shape,
            native.spacing,
            native.origin,
            native.direction,
            working_spacing,
            working,
            shift,  # type: ignore[arg-type]
        )

    @cached_property
    def working_origin(self) -> Triple:
        """LPS mm of working voxel (0, 0, 0)'s centre (computed once: every file of a scan
        asks)."""
        offset_mm = (np.asarray(self.shift) + 0.5) * self.working_spacing
        offset_mm -= 0.5 * np.asarray(self.native_spacing)
        origin = np.asarray(self.native_origin) + np.asarray(self.native_direction) @ offset_mm
        return tuple(float(v) for v in origin)  # type: ignore[return-value]

    def working_volume(self, array: np.ndarray) -> Volume:
        """``array`` (working shape) placed where the working grid lies."""
        return Volume(
            array,
            self.working_spacing,
            origin=self.working_origin,
            direction=self.native_direction,
        )

    def native_volume(self, array: np.ndarray) -> Volume:
        """``array`` (native shape) placed where the scan lies."""
        return Volume(
            array, self.native_spacing, origin=self.native_origin, direction=self.native_direction
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> GridTransform:
        fields: dict[str, Any] = json.loads(text)
        return cls(**fields)
