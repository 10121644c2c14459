"""Voxel grids and smooth random fields defined in millimetres rather than voxels.

A field is a sum of random Fourier modes with a Gaussian spectrum (random Fourier features). It
can be evaluated on any grid, so a subject's B-mode (device grid), SWE (coarser grid) and
annotation sample the *same* tissue, and a device's voxel size changes the sampling, never the
anatomy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Triple = tuple[float, float, float]

#: Enough modes for a near-Gaussian field; more cost time without changing the look.
DEFAULT_MODES = 48


@dataclass(frozen=True)
class Grid:
    """Voxel centres of a (lateral, depth, sweep) volume whose corner sits at 0 mm, skin at depth 0.

    Voxel ``n`` along an axis covers ``[n, n + 1) * spacing``, so grids with the same extent
    cover the same field of view whatever their voxel size.
    """

    shape: tuple[int, int, int]
    spacing: Triple

    @classmethod
    def from_spacing(cls, field_of_view_mm: Triple, spacing: Triple) -> Grid:
        """A device's native grid: its own voxel size, as many voxels as fit the field of view."""
        shape = tuple(max(1, round(f / s)) for f, s in zip(field_of_view_mm, spacing, strict=True))
        return cls(shape, spacing)  # type: ignore[arg-type]

    @property
    def extent_mm(self) -> Triple:
        return tuple(n * s for n, s in zip(self.shape, self.spacing, strict=True))  # type: ignore[return-value]

    def coarsened(self, approx_spacing: Triple) -> Grid:
        """A grid over exactly this field of view with voxels close to ``approx_spacing``."""
        extent = self.extent_mm
        shape = tuple(max(1, round(e / s)) for e, s in zip(extent, approx_spacing, strict=True))
        spacing = tuple(e / n for e, n in zip(extent, shape, strict=True))
        return Grid(shape, spacing)  # type: ignore[arg-type]

    def axes_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel-centre coordinates along each axis."""
        return tuple(  # type: ignore[return-value]
            (np.arange(n) + 0.5) * s for n, s in zip(self.shape, self.spacing, strict=True)
        )


@dataclass(frozen=True)
class FourierField:
    """A zero-mean, unit-variance random field with Gaussian covariance of given lengths (mm).

    An infinite correlation length makes the field constant along that axis.
    """

    wavevectors: np.ndarray  # (modes, 3) in rad/mm
    phases: np.ndarray  # (modes,)

    @classmethod
    def draw(
        cls, rng: np.random.Generator, correlation_mm: Triple, modes: int = DEFAULT_MODES
    ) -> FourierField:
        # A Gaussian covariance exp(-r²/2ℓ²) has a Gaussian spectrum with standard deviation 1/ℓ.
        wavevectors = rng.standard_normal((modes, 3)) / np.asarray(correlation_mm, dtype=float)
        return cls(wavevectors, rng.uniform(0.0, 2 * math.pi, modes))

    def on_grid(self, grid: Grid) -> np.ndarray:
        """The field at every voxel centre of ``grid``."""
        return self.sample(*grid.axes_mm())

    def on_surface(self, grid: Grid) -> np.ndarray:
        """The field over (lateral, sweep) at depth 0: for quantities that are maps, not volumes."""
        lateral, _, sweep = grid.axes_mm()
        return self.sample(lateral, np.zeros(1), sweep)[:, 0, :]

    def sample(self, lateral: np.ndarray, depth: np.ndarray, sweep: np.ndarray) -> np.ndarray:
        """Evaluate on the outer product of three coordinate vectors (mm).

        Each mode factorises into per-axis complex exponentials, so the sum over modes is one
        matrix product instead of a cosine per mode per voxel. Double precision throughout:
        BLAS picks its kernel (and so its order of summation) by CPU, and numpy its vector
        functions, so in single precision a seed rendered a cohort whose last bits, and a few
        8-bit B-mode voxels, changed from one machine to the next.
        """
        k = self.wavevectors
        along_lateral = np.exp(1j * (np.outer(k[:, 0], lateral) + self.phases[:, None]))
        along_depth = np.exp(1j * np.outer(k[:, 1], depth))
        along_sweep = np.exp(1j * np.outer(k[:, 2], sweep))
        plane = (along_lateral[:, :, None] * along_depth[:, None, :]).reshape(len(k), -1)
        values = (plane.T @ along_sweep).real * math.sqrt(2.0 / len(k))
        return values.reshape(len(lateral), len(depth), len(sweep))
