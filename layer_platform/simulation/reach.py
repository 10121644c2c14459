"""How far a planted effect reaches: all of its driver layers, and optionally beyond them.

Real pathology rarely stops at a segmentation boundary (oedema, fibrosis or a stiff fascia pull on
their neighbours), so a spill-over fades with the distance in mm from the driver layers rather
than in voxels: every device grid and the coarser SWE grid see the same reach.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt

from layer_platform.labels import Layer
from layer_platform.simulation.fields import Triple


def reach(
    labels: np.ndarray, layers: tuple[Layer, ...], spill_mm: float, spacing: Triple
) -> np.ndarray:
    """Weight of the effect per voxel (float32): 1 in ``layers``, exp(-d / spill_mm) at a
    distance d (mm) from them, 0 outside them when ``spill_mm`` is 0."""
    inside = np.isin(labels, layers)
    if not spill_mm or not inside.any():
        return inside.astype(np.float32)
    distance = distance_transform_edt(~inside, sampling=spacing)
    return np.exp(-distance / spill_mm).astype(np.float32)
