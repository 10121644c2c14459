"""Header geometry → LPS origin and axis directions, the same way for every format.

Decoders hand over what their header states (see ``formats.Decoded``); ``canonical_geometry``
fills what it does not state (a frames axis, a 2D image's new sweep axis) so the direction stays
a right-handed orthonormal completion, then applies the reader's axis permutation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from layer_platform.io.volume import IDENTITY_DIRECTION, Matrix3, as_matrix3

Vector3 = tuple[float, float, float]

#: Sign of (x, y, z) that turns a NRRD ``space`` into LPS. ITK reads every other space
#: (``scanner-xyz``, ``3D-right-handed``, none) as LPS, and so does the platform.
NRRD_SPACE_TO_LPS: dict[str, Vector3] = {
    "left-posterior-superior": (1.0, 1.0, 1.0),
    "lps": (1.0, 1.0, 1.0),
    "right-anterior-superior": (-1.0, -1.0, 1.0),
    "ras": (-1.0, -1.0, 1.0),
    "left-anterior-superior": (1.0, -1.0, 1.0),
    "las": (1.0, -1.0, 1.0),
}


def lps_vector(values: Sequence[float] | np.ndarray, sign: Sequence[float] = (1, 1, 1)) -> Vector3:
    """2 or 3 coordinates (a 2D header has 2) as an LPS 3-vector, times ``sign`` per axis."""
    padded = np.zeros(3)
    coordinates = np.asarray(values, dtype=float).ravel()[:3]
    padded[: coordinates.size] = coordinates
    return tuple(float(v) for v in padded * np.asarray(sign, dtype=float))  # type: ignore[return-value]


def unit(values: Sequence[float] | np.ndarray, sign: Sequence[float] = (1, 1, 1)) -> Vector3 | None:
    """The unit LPS vector along ``values``, or None for a zero or non-finite one."""
    vector = np.asarray(lps_vector(values, sign))
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(vector).all() or norm == 0:
        return None
    return tuple(float(v) for v in vector / norm)  # type: ignore[return-value]


def _completed(columns: list[Vector3 | None]) -> np.ndarray:
    """3 x 3 direction from known columns; unknown ones complete a right-handed frame."""
    known = [i for i, c in enumerate(columns) if c is not None]
    if not known:
        return np.asarray(IDENTITY_DIRECTION)
    matrix = np.asarray([c if c is not None else (0.0, 0.0, 0.0) for c in columns]).T
    if len(known) == 1:  # add the canonical basis vector least parallel to the known one
        axis = known[0]
        basis = np.eye(3)[int(np.argmin(np.abs(matrix[:, axis])))]
        other = basis - basis @ matrix[:, axis] * matrix[:, axis]
        matrix[:, (axis + 1) % 3] = other / np.linalg.norm(other)
    missing = [i for i in range(3) if not matrix[:, i].any()]
    for axis in missing:
        a, b = (axis + 1) % 3, (axis + 2) % 3
        matrix[:, axis] = np.cross(matrix[:, a], matrix[:, b])
    return matrix


def canonical_geometry(
    origin: Vector3 | None,
    directions: Sequence[Vector3 | None],
    permutation: tuple[int, int, int],
) -> tuple[Vector3, Matrix3]:
    """(origin, direction) of the canonical volume from file-order header geometry.

    ``permutation[c]`` is the file axis holding canonical axis ``c`` (``readers._permutation``);
    a permutation moves no voxel, so the origin (voxel 0's centre) is unchanged. Degenerate
    header geometry (parallel axes, non-finite values) is treated as absent, as if unstated,
    rather than refusing pixels that are fine.
    """
    columns = [*list(directions)[:3], *[None] * max(0, 3 - len(directions))]
    matrix = _completed(columns)
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-6:
        matrix = np.asarray(IDENTITY_DIRECTION)
    if origin is None or not np.isfinite(origin).all():
        origin = (0.0, 0.0, 0.0)
    return origin, as_matrix3(matrix[:, list(permutation)])
