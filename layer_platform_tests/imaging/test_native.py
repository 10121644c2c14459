"""Native-space outputs: an original file with an oblique geometry, through preprocessing and the
reference-annotation segmentation path, back on its own grid with its own geometry.

Each original is written with the format's own library (nibabel, pynrrd, SimpleITK, pydicom via
the DICOM writer), with a non-zero origin, a rotated direction and anisotropic spacing.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import slicerio

from layer_platform.imaging.native import (
    LABEL_DESCRIPTION,
    NATIVE_FOLDER,
    to_native,
    write_saliency_maps,
    write_segmentation,
)
from layer_platform.imaging.preprocess import (
    PreprocessConfig,
    load_preprocessed,
    preprocess_scan,
    save_preprocessed,
)
from layer_platform.io import Volume, read_volume
from layer_platform.io.dicom import write_dicom
from layer_platform.io.volume import LPS_RAS_FLIP
from layer_platform.labels import LAYER_COLOURS, TISSUE_LAYERS, layer_rgb

SHAPE = (20, 90, 8)  # lateral, depth, sweep
SPACING = (0.4, 0.12, 1.1)
ORIGIN = (-12.5, 30.25, 7.75)
#: The working grid covers the whole field of view (8 x 10.8 x 8.8 mm), with some padding.
CONFIG = PreprocessConfig(target_spacing=(0.5, 0.15, 1.0), target_shape=(18, 76, 10))


def rotation() -> np.ndarray:
    """A proper rotation (DICOM can only store right-handed frames) about an oblique axis."""
    a, b = 0.35, -0.6
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def annotation() -> np.ndarray:
    """Six layers along depth with wavy boundaries, background below the muscle."""
    lateral = np.arange(SHAPE[0])[:, None, None]
    sweep = np.arange(SHAPE[2])[None, None, :]
    depth = np.arange(SHAPE[1])[None, :, None]
    wave = 2.0 * np.sin(lateral / 4.0) + np.cos(sweep / 3.0)
    labels = np.zeros(SHAPE, dtype=np.uint8)
    for layer, top in zip(TISSUE_LAYERS, (0, 12, 26, 40, 54, 68), strict=True):
        labels[np.broadcast_to(depth >= top + wave * (top > 0), SHAPE)] = int(layer)
    labels[np.broadcast_to(depth >= 86, SHAPE)] = 0
    return labels


def bmode_from(labels: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(0).integers(0, 30, SHAPE)
    return (labels.astype(np.int64) * 30 + noise).astype(np.uint8)


def lps_affine() -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation() * np.asarray(SPACING)
    affine[:3, 3] = ORIGIN
    return affine


def write_original(folder: Path, fmt: str, role: str, array: np.ndarray) -> Path:
    """``array`` in ``fmt`` with the test geometry, written by that format's own library."""
    if fmt == "nii.gz":
        image = nib.Nifti1Image(array, LPS_RAS_FLIP @ lps_affine())
        image.set_sform(image.affine, code=1)
        path = folder / f"{role}.nii.gz"
        nib.save(image, path)
    elif fmt == "nrrd":  # stated in RAS, to exercise the conversion
        ras = LPS_RAS_FLIP @ lps_affine()
        header = {
            "space": "right-anterior-superior",
            "space directions": ras[:3, :3].T,
            "space origin": ras[:3, 3],
            "kinds": ["domain"] * 3,
        }
        path = folder / f"{role}.nrrd"
        nrrd.write(str(path), array, header)
    elif fmt == "mha":
        image = sitk.GetImageFromArray(array.transpose(2, 1, 0).copy())
        image.SetSpacing(SPACING)
        image.SetOrigin(ORIGIN)
        image.SetDirection(rotation().ravel().tolist())
        path = folder / f"{role}.mha"
        sitk.WriteImage(image, str(path))
    else:
        path = folder / f"{role}.dcm"
        write_dicom(path, array, SPACING, origin=ORIGIN, direction=rotation())
    return path


def assert_geometry(volume: Volume, shape, spacing, origin, direction) -> None:
    assert volume.shape == tuple(shape)
    np.testing.assert_allclose(volume.spacing, spacing, rtol=1e-6)
    np.testing.assert_allclose(volume.origin, origin, atol=1e-4)
    np.testing.assert_allclose(volume.direction, direction, atol=1e-6)


@pytest.mark.parametrize("fmt", ["nii.gz", "nrrd", "mha", "dcm"])
def test_native_outputs_carry_the_source_geometry_and_overlay_the_annotation(
    tmp_path: Path, fmt: str
) -> None:
    reference = annotation()
    originals = {
        role: write_original(tmp_path, fmt, role, array)
        for role, array in (("bmode", bmode_from(reference)), ("layers", reference))
    }
    bmode, layers = (read_volume(originals[role]) for role in ("bmode", "layers"))
    assert_geometry(bmode, SHAPE, SPACING, ORIGIN, rotation())  # the reader keeps it all

    folder = tmp_path / "preprocessed"
    save_preprocessed(preprocess_scan(bmode, None, layers, CONFIG), folder)
    stored = load_preprocessed(folder)  # the transform travels with the preprocessed files
    assert stored.grid is not None and stored.layers is not None
    write_segmentation(folder, stored.layers, stored)  # the reference-annotation path

    native = read_volume(folder / NATIVE_FOLDER / "segmentation.nii.gz")
    assert_geometry(native, bmode.shape, bmode.spacing, bmode.origin, bmode.direction)
    dice = [
        2
        * np.sum((native.array == v) & (reference == v))
        / (np.sum(native.array == v) + np.sum(reference == v))
        for v in map(int, TISSUE_LAYERS)
    ]
    assert np.mean(dice) >= 0.95, dice

    # The working-grid file lies where the working grid does (not at diag(spacing)).
    working = read_volume(folder / "segmentation.nii")
    expected = stored.grid.working_volume(stored.layers)
    assert_geometry(working, expected.shape, CONFIG.target_spacing, expected.origin, rotation())
    np.testing.assert_array_equal(working.array, stored.layers)
    if fmt != "dcm":  # an independent reader (ITK, as 3D Slicer) sees the same grid
        source = sitk.ReadImage(str(originals["bmode"]))
        overlay = sitk.ReadImage(str(folder / NATIVE_FOLDER / "segmentation.nii.gz"))
        assert overlay.GetSize() == source.GetSize()
        np.testing.assert_allclose(overlay.GetOrigin(), source.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(overlay.GetDirection(), source.GetDirection(), atol=1e-5)
        np.testing.assert_allclose(overlay.GetSpacing(), source.GetSpacing(), rtol=1e-6)
    else:
        dataset = pydicom.dcmread(originals["bmode"])
        np.testing.assert_allclose(np.asarray(dataset.ImagePositionPatient, float), ORIGIN)


def test_a_linear_map_comes_back_exactly_on_the_native_grid(tmp_path: Path) -> None:
    """Linear interpolation of a map linear in depth is exact: depth (mm) in, depth (mm) out."""
    bmode = Volume(bmode_from(annotation()), SPACING, origin=ORIGIN, direction=rotation())
    scan = preprocess_scan(bmode, None, None, CONFIG)
    assert scan.grid is not None
    shift_mm = (scan.grid.shift[1] + 0.5) * CONFIG.target_spacing[1]
    depth_mm = shift_mm + np.arange(CONFIG.target_shape[1]) * CONFIG.target_spacing[1]
    working = np.broadcast_to(depth_mm[None, :, None], CONFIG.target_shape).astype(np.float32)
    native = to_native(working, scan.grid, labels=False)
    expected = (np.arange(SHAPE[1]) + 0.5) * SPACING[1]
    interior = native[2:-2, 2:-2, 1:-1]  # away from the working grid's outer half-voxel
    np.testing.assert_allclose(
        interior, np.broadcast_to(expected[2:-2][None, :, None], interior.shape), atol=1e-4
    )

    write_saliency_maps(tmp_path, {"bmode_gradient": working}, scan)
    back = read_volume(tmp_path / NATIVE_FOLDER / "bmode_gradient.nii.gz")
    assert_geometry(back, SHAPE, SPACING, ORIGIN, rotation())
    np.testing.assert_allclose(back.array, native, atol=1e-6)
    assert read_volume(tmp_path / "bmode_gradient.nii.gz").origin == pytest.approx(
        scan.grid.working_origin, abs=1e-4
    )


def test_seg_nrrd_names_and_colours_read_back_with_slicerio(tmp_path: Path) -> None:
    bmode = Volume(bmode_from(annotation()), SPACING, origin=ORIGIN, direction=rotation())
    scan = preprocess_scan(bmode, None, Volume(annotation(), SPACING), CONFIG)
    assert scan.layers is not None
    write_segmentation(tmp_path, scan.layers, scan)
    for folder in (tmp_path, tmp_path / NATIVE_FOLDER):
        segmentation = slicerio.read_segmentation(str(folder / "segmentation.seg.nrrd"))
        segments = {s["labelValue"]: s for s in segmentation["segments"]}
        assert sorted(segments) == [int(layer) for layer in TISSUE_LAYERS]
        for layer in TISSUE_LAYERS:
            assert segments[int(layer)]["name"] == layer.display_name
            rgb = np.asarray(segments[int(layer)]["color"]) * 255
            np.testing.assert_allclose(rgb, layer_rgb(layer), atol=1e-3)
        nifti = sorted(folder.glob("segmentation.nii*"))[0]
        np.testing.assert_array_equal(segmentation["voxels"], read_volume(nifti).array)
        np.testing.assert_allclose(segmentation["ijkToLPS"], read_volume(nifti).affine, atol=1e-4)
        description = (folder / LABEL_DESCRIPTION).read_text()
        for layer in TISSUE_LAYERS:
            r, g, b = layer_rgb(layer)
            assert f"{int(layer):5d} {r:5d} {g:4d} {b:4d}" in description
            assert f'"{layer.display_name}"' in description
    assert len(LAYER_COLOURS) == len(TISSUE_LAYERS)
