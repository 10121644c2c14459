"""Working-grid outputs put back on the scan's own grid, so they overlay the file exported.

The working grid is the native grid resampled and cropped (``grid.GridTransform``), so the
inverse is one SimpleITK resampling from the working grid's LPS geometry onto the native one:
nearest neighbour for label maps, linear for continuous maps; native voxels the working grid
does not cover (cropped away) get 0. The results are written under ``<folder>/native/`` with the
native geometry: opened with the original ``bmode`` in 3D Slicer or ITK-SNAP, they coincide.

Label maps are written three ways: NIfTI (any tool), Slicer ``.seg.nrrd`` with the layers'
names and colours, and an ITK-SNAP label description (``layers.label.txt``) for the NIfTI.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk

from layer_platform.imaging.grid import GridTransform
from layer_platform.imaging.preprocess import PreprocessedScan
from layer_platform.io import Volume, write_volume
from layer_platform.io.labelmaps import Segment, write_label_description, write_segmentation_nrrd
from layer_platform.labels import TISSUE_LAYERS, layer_rgb
from layer_platform.locations import Location, as_location

#: Sub-folder of an output folder holding its native-grid copies.
NATIVE_FOLDER = "native"
#: ITK-SNAP label description file beside every exported label map.
LABEL_DESCRIPTION = "layers.label.txt"
#: The six layers as viewers should name and colour them (``labels.LAYER_COLOURS``).
LAYER_SEGMENTS: tuple[Segment, ...] = tuple(
    Segment(int(layer), layer.display_name, layer_rgb(layer)) for layer in TISSUE_LAYERS
)


def _image(volume: Volume) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array.transpose(2, 1, 0)))
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(np.asarray(volume.direction).ravel().tolist())
    return image


def to_native(array: np.ndarray, grid: GridTransform, *, labels: bool) -> np.ndarray:
    """A working-grid ``array`` resampled onto the native grid (canonical axis order).

    ``labels``: nearest neighbour, uint8 out; otherwise linear, float32 out.
    """
    values = array.astype(np.uint8 if labels else np.float32)
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n) for n in grid.native_shape])
    resampler.SetOutputSpacing(grid.native_spacing)
    resampler.SetOutputOrigin(grid.native_origin)
    resampler.SetOutputDirection(np.asarray(grid.native_direction).ravel().tolist())
    resampler.SetInterpolator(sitk.sitkNearestNeighbor if labels else sitk.sitkLinear)
    resampler.SetDefaultPixelValue(0.0)
    native = resampler.Execute(_image(grid.working_volume(values)))
    return sitk.GetArrayFromImage(native).transpose(2, 1, 0).astype(values.dtype)


def write_label_map(folder: Location, stem: str, labels: Volume) -> dict[str, Location]:
    """``stem.nii.gz``/``.nii`` as given, ``stem.seg.nrrd`` and the ITK-SNAP description."""
    folder = as_location(folder)
    return {
        "nifti": write_volume(folder / stem, labels),
        "seg_nrrd": write_segmentation_nrrd(
            folder / f"{stem.split('.nii')[0]}.seg.nrrd", labels, LAYER_SEGMENTS
        ),
        "label_description": write_label_description(folder / LABEL_DESCRIPTION, LAYER_SEGMENTS),
    }


def write_native_outputs(
    grid: GridTransform,
    folder: Location,
    *,
    segmentation: np.ndarray | None = None,
    maps: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Location]:
    """Write working-grid outputs on the native grid under ``folder/native``; return the paths.

    ``segmentation`` becomes ``segmentation.nii.gz`` (+ ``.seg.nrrd`` and label description);
    each of ``maps`` becomes ``<name>.nii.gz`` (float32).
    """
    native = as_location(folder) / NATIVE_FOLDER
    written: dict[str, Location] = {}
    if segmentation is not None:
        labels = grid.native_volume(to_native(segmentation, grid, labels=True))
        written |= write_label_map(native, "segmentation.nii.gz", labels)
    for name, array in (maps or {}).items():
        volume = grid.native_volume(to_native(array, grid, labels=False))
        written[name] = write_volume(native / f"{name}.nii.gz", volume)
    return written


def write_segmentation(folder: Location, labels: np.ndarray, stored: PreprocessedScan) -> Location:
    """A working-grid segmentation as ``segmentation.nii`` (+ ``.seg.nrrd``, label description)
    in ``folder``, and on the native grid under ``folder/native`` when the transform is known.

    Returns the working-grid NIfTI's path (what the ``segmentations`` table records).
    """
    written = write_label_map(folder, "segmentation.nii", stored.volume(labels))
    if stored.grid is not None:
        write_native_outputs(stored.grid, folder, segmentation=labels)
    return written["nifti"]


def write_saliency_maps(
    folder: Location, maps: Mapping[str, np.ndarray], stored: PreprocessedScan
) -> None:
    """Each map as ``<name>.nii.gz`` on the working grid in ``folder`` and, when the transform
    is known, on the native grid under ``folder/native``."""
    for name, array in maps.items():
        write_volume(as_location(folder) / f"{name}.nii.gz", stored.volume(array))
    if stored.grid is not None:
        write_native_outputs(stored.grid, folder, maps=maps)
