"""One scan's volumes → the working grid every model sees: same spacing, same shape, skin at top.

Steps, in order: normalise the B-mode intensities on the native grid; resample B-mode, SWE and
reference layers onto one destination grid (``resample``: trilinear for images, nearest for
labels, as MONAI's ``SpatialResample`` would, but separably per axis), cropped or padded to
``target_shape`` (only the window the crop keeps is resampled; padding is zeros). Crop and pad
are anchored at the skin along depth (depth index 0 stays the transducer surface, so a layer's
depth means the same thing in every scan) and centred laterally and along the sweep.

Grids follow the simulator's convention: voxel ``n`` covers ``[n, n + 1) * spacing`` mm, so the
B-mode and a coarser SWE grid over the same field of view start at the same corner (0 mm).

Storage format (``save_preprocessed``): one folder per scan holding uncompressed NIfTI-1 files
``bmode.nii`` (float32, about [0, 1]), ``swe.nii`` (float32 kPa, 0 where invalid),
``swe_valid.nii`` (uint8 0/1) and ``layers.nii`` (uint8 labels 0..6), the last three only when
present; axes (lateral, depth, sweep) = NIfTI (i, j, k), with the working grid's true place in
the scan's space as affine, and ``transform.json`` (``grid.GridTransform``: how the working grid
was cut from the native one, which ``imaging.native`` inverts). Opens as-is in 3D Slicer or
ITK-SNAP, on top of the original scan, and loads in well under a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from layer_platform.errors import ScanError
from layer_platform.imaging.grid import GridTransform, crop_pad_plan
from layer_platform.imaging.resample import resample, resampled_shape
from layer_platform.io import Volume, read_volume, write_volume
from layer_platform.io.writers import write_atomically
from layer_platform.labels import MAX_LABEL
from layer_platform.locations import Location, as_location, make_folder

Triple = tuple[float, float, float]
Shape = tuple[int, int, int]

#: B-mode normalisations ``PreprocessConfig.intensity`` accepts.
INTENSITY_MODES: tuple[str, ...] = ("percentile", "fixed")
#: Named working grids (``PreprocessConfig.preset``; ``LAYER_PRESET``).
PRESETS: tuple[str, ...] = ("cpu", "gpu", "smoke")
#: Normalised B-mode above this counts as tissue: padding is exactly 0 and the scanner's
#: electronic noise floor sits a few grey levels above it, while every tissue is brighter.
TISSUE_FLOOR = 0.02
#: File name of each array in a preprocessed folder (see the module docstring).
FILES: dict[str, str] = {
    "bmode": "bmode.nii",
    "swe": "swe.nii",
    "swe_valid": "swe_valid.nii",
    "layers": "layers.nii",
}
#: The ``GridTransform`` record in a preprocessed folder.
TRANSFORM_FILE = "transform.json"


@dataclass(frozen=True)
class PreprocessConfig:
    """The working grid and the B-mode normalisation.

    Args:
        target_spacing: voxel size in mm along (lateral, depth, sweep).
        target_shape: voxels along (lateral, depth, sweep) after crop/pad.
        intensity: ``"fixed"`` (default) divides 8-bit grey levels by 255 and uses no per-scan
            statistic; ``"percentile"`` maps each scan's ``percentiles`` to [0, 1] (clipped).
            Scanners already log-compress B-mode onto 0..255, so ``fixed`` keeps every layer's
            level as displayed. Per-scan percentiles are anchored in the brightest layer (the
            deep fascia holds the 99th percentile), so brightening it rescales the whole scan
            and clips the brightening away: on a planted deep-fascia driver the held-out AUC
            was 0.87 with percentiles and 0.96 with ``fixed`` (README, "Pain classifiers"). Use
            ``percentile`` (``LAYER_INTENSITY``) for exporters that do not write 8-bit grey.
        percentiles: lower and upper percentile for ``"percentile"``.
        swe_extent_tolerance: largest relative difference per axis between the SWE's (or the
            reference layers') field of view and the B-mode's before the scan is refused.
    """

    target_spacing: Triple
    target_shape: Shape
    intensity: str = "fixed"
    percentiles: tuple[float, float] = (1.0, 99.0)
    swe_extent_tolerance: float = 0.05

    def __post_init__(self) -> None:
        # Configs arrive from YAML/Dagster as lists; freeze them as tuples of the right type.
        object.__setattr__(self, "target_spacing", tuple(float(s) for s in self.target_spacing))
        object.__setattr__(self, "target_shape", tuple(int(n) for n in self.target_shape))
        object.__setattr__(self, "percentiles", tuple(float(p) for p in self.percentiles))
        if len(self.target_spacing) != 3 or not all(
            math.isfinite(s) and s > 0 for s in self.target_spacing
        ):
            raise ValueError(
                f"target_spacing must be three positive mm values (lateral, depth, sweep); "
                f"got {self.target_spacing}"
            )
        if len(self.target_shape) != 3 or min(self.target_shape) < 1:
            raise ValueError(
                f"target_shape must be three voxel counts >= 1 (lateral, depth, sweep); "
                f"got {self.target_shape}"
            )
        if self.intensity not in INTENSITY_MODES:
            known = ", ".join(INTENSITY_MODES)
            raise ValueError(f"unknown intensity {self.intensity!r}; use one of {known}")
        low, high = self.percentiles if len(self.percentiles) == 2 else (math.nan, math.nan)
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentiles must be 0 <= low < high <= 100; got {self.percentiles}")
        if not 0.0 < self.swe_extent_tolerance < 1.0:
            tolerance = f"a fraction in (0, 1), e.g. 0.05 for 5%; got {self.swe_extent_tolerance}"
            raise ValueError(f"swe_extent_tolerance is {tolerance}")

    @classmethod
    def cpu(cls) -> PreprocessConfig:
        """32 x 144 x 16 voxels of 1.0 x 0.25 x 1.5 mm: a 32 x 36 x 24 mm field of view.

        Depth keeps near-native resolution (scanners sample 0.18-0.22 mm) so the thinnest
        superficial fascia (0.5 mm) spans 2 voxels and the deep fascia 3-8. Lateral and sweep
        are coarse because the layers are near-horizontal sheets whose thickness changes over
        ~10 mm. 74k voxels per channel: a small 3D CNN trains on ~80 scans in minutes on 2 cores.
        """
        return cls(target_spacing=(1.0, 0.25, 1.5), target_shape=(32, 144, 16))

    @classmethod
    def smoke(cls) -> PreprocessConfig:
        """16 x 144 x 16 voxels of 2.0 x 0.25 x 1.5 mm: the CPU grid at half its lateral
        voxels (same field of view and depth), for smoke runs and tests. The networks halve
        each axis three times, so 16 lateral voxels reach 2 at their deepest convolutions,
        where bfloat16 weight gradients on the CPU do not repeat: training there runs in
        float32 (``compute.require_repeatable_gradients``)."""
        return cls(target_spacing=(2.0, 0.25, 1.5), target_shape=(16, 144, 16))

    @classmethod
    def preset(cls, name: str) -> PreprocessConfig:
        """The working grid called ``name`` (``PRESETS``)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
        return getattr(cls, name)()

    @classmethod
    def gpu(cls) -> PreprocessConfig:
        """128 x 352 x 48 voxels of 0.25 x 0.1 x 0.5 mm (32 x 35.2 x 24 mm), paper-like.

        Fine enough for 5-20 voxels across each fascia and for speckle texture; each axis halves
        five times, as DenseNet121 needs. 2.2M voxels per channel: a GPU job.
        """
        return cls(target_spacing=(0.25, 0.1, 0.5), target_shape=(128, 352, 48))


@dataclass(frozen=True, eq=False)
class PreprocessedScan:
    """One scan on the working grid, arrays in canonical (lateral, depth, sweep) order.

    Args:
        bmode: float32 intensities in [0, 1]; padding is 0.
        swe: float32 stiffness in kPa, 0 wherever ``swe_valid`` is False; None if not acquired.
        swe_valid: bool, True where ``swe`` is a measurement; given exactly when ``swe`` is.
        layers: uint8 reference labels 0..6 (``layer_platform.labels``), or None.
        spacing: voxel size in mm along (lateral, depth, sweep).
        grid: where the working grid lies in the scan's space; None for folders written
            before the transform was recorded.
    """

    bmode: np.ndarray
    swe: np.ndarray | None
    swe_valid: np.ndarray | None
    layers: np.ndarray | None
    spacing: Triple
    grid: GridTransform | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        if self.bmode.ndim != 3:
            raise ValueError(f"bmode must be 3D (lateral, depth, sweep); got {self.bmode.shape}")
        expected = {
            "bmode": np.float32,
            "swe": np.float32,
            "swe_valid": np.bool_,
            "layers": np.uint8,
        }
        for name, dtype in expected.items():
            array = getattr(self, name)
            if array is not None and (array.dtype != dtype or array.shape != self.bmode.shape):
                raise ValueError(
                    f"{name} must be {np.dtype(dtype)} with the B-mode shape {self.bmode.shape}; "
                    f"got {array.dtype} {array.shape}"
                )
        if (self.swe is None) != (self.swe_valid is None):
            raise ValueError("swe and swe_valid must be given together")

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that are present, keyed as in ``FILES``."""
        return {role: getattr(self, role) for role in FILES if getattr(self, role) is not None}

    def volume(self, array: np.ndarray) -> Volume:
        """A working-grid ``array`` with the working grid's geometry, ready to write."""
        return Volume(array, self.spacing) if self.grid is None else self.grid.working_volume(array)

    def stats(self) -> dict[str, Any]:
        """Plain-Python summary for asset metadata, the warehouse and asset checks."""
        p1, p99 = np.percentile(self.bmode, [1.0, 99.0])
        finite = bool(np.isfinite(self.bmode).all()) and (
            self.swe is None or bool(np.isfinite(self.swe).all())
        )
        return {
            "shape": tuple(int(n) for n in self.bmode.shape),
            "spacing": self.spacing,
            "bmode_min": float(self.bmode.min()),
            "bmode_max": float(self.bmode.max()),
            "bmode_mean": float(self.bmode.mean()),
            "bmode_p1": float(p1),
            "bmode_p99": float(p99),
            "swe_valid_fraction": None if self.swe_valid is None else float(self.swe_valid.mean()),
            "tissue_fraction": float((self.bmode > TISSUE_FLOOR).mean()),
            "all_finite": finite,
        }


def _check_8bit(low: float, high: float) -> None:
    if low < 0 or high > 255:
        raise ScanError(
            f"intensity 'fixed' expects 8-bit B-mode grey levels (0..255); this scan spans "
            f"{low:g}..{high:g}: export 8-bit or use intensity 'percentile'"
        )


def normalise_bmode(array: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """B-mode grey levels → float32 in [0, 1] as ``config.intensity`` says.

    Raises:
        ScanError: non-finite voxels; no contrast between the percentiles; ``"fixed"`` on
            values outside 0..255 (not an 8-bit display image).
    """
    stored = np.asarray(array)
    if config.intensity == "fixed" and np.issubdtype(stored.dtype, np.integer):
        # Integers are finite and their range is checked as stored; float32 division by 255 is
        # what float64 division rounded to float32 gives, at a fifth of the cost.
        _check_8bit(float(stored.min()), float(stored.max()))
        return stored.astype(np.float32) / np.float32(255.0)
    values = stored.astype(np.float64, copy=False)
    if not np.isfinite(values).all():
        raise ScanError("B-mode has NaN or infinite voxels: re-export the scan")
    if config.intensity == "fixed":
        _check_8bit(float(values.min()), float(values.max()))
        return (values / 255.0).astype(np.float32)
    low, high = np.percentile(values, config.percentiles)
    if not high > low:
        raise ScanError(
            f"B-mode has no contrast: percentiles {config.percentiles} are both {low:g}"
        )
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _mm(extent: Triple) -> str:
    return " x ".join(f"{e:.2f}" for e in extent) + " mm"


def _check_alignment(role: str, volume: Volume, bmode: Volume, tolerance: float) -> None:
    """Refuse a volume whose field of view is not the B-mode's (same corner is the contract)."""
    ours, theirs = volume.extent_mm, bmode.extent_mm
    if any(abs(a - b) > tolerance * b for a, b in zip(ours, theirs, strict=True)):
        raise ScanError(
            f"{role} grid cannot be aligned with the B-mode: {role} covers {_mm(ours)} "
            f"(lateral x depth x sweep) but the B-mode {_mm(theirs)}; they must agree within "
            f"{tolerance:.0%} per axis"
        )


#: ``(channels, their spacing, mode)`` → those channels on the working grid (``_onto_working``).
Onto = Callable[[np.ndarray, Triple, str], np.ndarray]


def _onto_working(spacing: Triple, resampled: Shape, working: Shape) -> Onto:
    """Resampling onto ``spacing`` with the crop and pad of ``grid.crop_pad_plan`` (from the
    ``resampled`` shape to the ``working`` one): only the kept window is resampled, and the
    padding is zeros."""
    starts, ends, borders = crop_pad_plan(resampled, working)
    window = tuple(end - start for start, end in zip(starts, ends, strict=True))
    pads = [(0, 0), *zip(borders[0::2], borders[1::2], strict=True)]

    def onto(channels: np.ndarray, source_spacing: Triple, mode: str) -> np.ndarray:
        kept = resample(channels, source_spacing, spacing, window, mode, first=starts)  # type: ignore[arg-type]
        return np.pad(kept, pads)

    return onto


def _swe_channels(swe: Volume, onto: Onto) -> tuple[np.ndarray, np.ndarray]:
    """SWE kPa (float32) and validity (bool) on the working grid.

    A voxel is valid when the SWE voxel its centre lies in measured something (nearest
    neighbour), so a no-signal region keeps its footprint. Its value is a normalised convolution:
    the zero-filled kPa and the validity mask are resampled bilinearly and divided, so a voxel
    next to a no-signal region averages only measured neighbours instead of being dragged
    towards 0 kPa.
    """
    kpa = np.asarray(swe.array, dtype=np.float32)  # the channel is stored as float32 anyway
    valid = np.isfinite(kpa) & (kpa > 0)
    stacked = np.stack([np.where(valid, kpa, np.float32(0.0)), valid.astype(np.float32)])
    summed, weight = onto(stacked, swe.spacing, "bilinear")
    valid_out = onto(valid[None], swe.spacing, "nearest")[0]
    # The nearest valid SWE voxel carries a bilinear weight > 0 wherever valid_out holds.
    values = np.where(valid_out, summed / np.where(valid_out, weight, 1.0), 0.0)
    return values.astype(np.float32), valid_out


def preprocess_scan(
    bmode: Volume, swe: Volume | None, layers: Volume | None, config: PreprocessConfig
) -> PreprocessedScan:
    """Put one scan's volumes on the working grid (see the module docstring).

    Args:
        bmode: B-mode in canonical order; defines the field of view.
        swe: stiffness in kPa on its own (usually coarser) grid over the B-mode's field of
            view; 0, negative or NaN voxels are "no measurement". None if not acquired.
        layers: reference labels 0..6 over the B-mode's field of view, or None.
        config: working grid and intensity handling.

    Raises:
        ScanError: SWE or layers whose field of view differs from the B-mode's beyond
            ``config.swe_extent_tolerance``; label values outside 0..6; a B-mode that cannot be
            normalised (see ``normalise_bmode``).
    """
    spacing = config.target_spacing
    resampled = resampled_shape(bmode.extent_mm, spacing)
    onto = _onto_working(spacing, resampled, config.target_shape)
    result_bmode = onto(normalise_bmode(bmode.array, config)[None], bmode.spacing, "bilinear")[0]
    swe_kpa, swe_valid = None, None
    if swe is not None:
        _check_alignment("SWE", swe, bmode, config.swe_extent_tolerance)
        swe_kpa, swe_valid = _swe_channels(swe, onto)
    result_layers = None
    if layers is not None:
        _check_alignment("reference layers", layers, bmode, config.swe_extent_tolerance)
        labels = np.asarray(layers.array)
        if labels.size and (labels.min() < 0 or labels.max() > MAX_LABEL):
            raise ScanError(
                f"reference layers hold labels {labels.min()}..{labels.max()}; "
                f"the label map is 0..{MAX_LABEL}"
            )
        codes = labels if np.issubdtype(labels.dtype, np.integer) else np.rint(labels)
        result_layers = onto(codes[None].astype(np.uint8), layers.spacing, "nearest")[0]
    return PreprocessedScan(
        bmode=result_bmode,
        swe=swe_kpa,
        swe_valid=swe_valid,
        layers=result_layers,
        spacing=spacing,
        grid=GridTransform.of(bmode, spacing, resampled, config.target_shape),
    )


def save_preprocessed(
    scan: PreprocessedScan, folder: Location, *, staged: bool = False
) -> dict[str, Location]:
    """Write ``scan`` as NIfTI files (and its transform) in ``folder``, each atomically unless
    ``folder`` is ``staged`` (``io.writers.write_atomically``).

    Returns the NIfTI paths by role. Files of roles the scan lacks are removed, so a re-run
    without SWE leaves no stale map.
    """
    folder = as_location(folder)
    make_folder(folder)
    written = {
        role: write_volume(folder / FILES[role], scan.volume(array), staged=staged)
        for role, array in scan.arrays().items()
    }
    if scan.grid is not None:
        text = scan.grid.to_json()
        write_atomically(folder / TRANSFORM_FILE, lambda path: path.write_text(text), staged=staged)
    else:
        (folder / TRANSFORM_FILE).unlink(missing_ok=True)
    for role in FILES.keys() - written.keys():
        (folder / FILES[role]).unlink(missing_ok=True)
    return written


def load_preprocessed(folder: Location) -> PreprocessedScan:
    """Read a folder written by ``save_preprocessed``.

    Raises:
        FileNotFoundError: no ``bmode.nii`` in ``folder``.
    """
    folder = as_location(folder)
    if not (folder / FILES["bmode"]).is_file():
        raise FileNotFoundError(f"{folder}: no {FILES['bmode']}; preprocess the scan first")
    volumes = {
        role: read_volume(folder / name)
        for role, name in FILES.items()
        if (folder / name).is_file()
    }
    arrays: dict[str, np.ndarray | None] = {role: None for role in FILES}
    arrays.update({role: volume.array for role, volume in volumes.items()})
    if arrays["swe_valid"] is not None:
        arrays["swe_valid"] = arrays["swe_valid"].astype(bool)
    # NIfTI keeps pixdim as float32: rounding to 1 nm restores the spacing the grid was made with.
    spacing = tuple(round(float(s), 6) for s in volumes["bmode"].spacing)
    record = folder / TRANSFORM_FILE
    grid = GridTransform.from_json(record.read_text()) if record.is_file() else None
    return PreprocessedScan(spacing=spacing, grid=grid, **arrays)  # type: ignore[arg-type]
