"""Origin and direction survive every reader and writer, in the one LPS convention."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from layer_platform.io import SUPPORTED_EXTENSIONS, Volume, read_volume, write_volume
from layer_platform.io.volume import IDENTITY_DIRECTION, LPS_RAS_FLIP

SPACING = (0.3, 0.2, 0.75)
ORIGIN = (10.5, -4.25, 33.0)
#: A proper rotation (DICOM stores right-handed frames only): lateral P, depth -S, sweep -L.
DIRECTION = ((0.0, 0.0, -1.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0))
ARRAY = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_every_format_keeps_origin_and_direction(tmp_path: Path, ext: str) -> None:
    volume = Volume(ARRAY, SPACING, origin=ORIGIN, direction=DIRECTION)
    back = read_volume(write_volume(tmp_path / f"scan.{ext}", volume))
    np.testing.assert_allclose(back.origin, ORIGIN, atol=1e-5)
    np.testing.assert_allclose(back.direction, DIRECTION, atol=1e-6)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-5)


@pytest.mark.parametrize("ext", ["nii", "nrrd", "mha"])
def test_itk_places_our_files_where_we_do(tmp_path: Path, ext: str) -> None:
    """SimpleITK (what 3D Slicer reads with) agrees with our LPS geometry."""
    path = write_volume(tmp_path / f"scan.{ext}", Volume(ARRAY, SPACING, {}, ORIGIN, DIRECTION))
    image = sitk.ReadImage(str(path))
    np.testing.assert_allclose(image.GetOrigin(), ORIGIN, atol=1e-5)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), DIRECTION, atol=1e-6)


def test_nifti_affine_is_ras_and_not_diag_spacing(tmp_path: Path) -> None:
    path = write_volume(tmp_path / "scan.nii", Volume(ARRAY, SPACING, {}, ORIGIN, DIRECTION))
    image = nib.load(path)
    expected = LPS_RAS_FLIP @ Volume(ARRAY, SPACING, {}, ORIGIN, DIRECTION).affine
    np.testing.assert_allclose(image.affine, expected, atol=1e-5)
    assert int(image.header["sform_code"]) == int(image.header["qform_code"]) == 1


def test_a_nifti_without_sform_or_qform_has_no_geometry(tmp_path: Path) -> None:
    image = nib.Nifti1Image(ARRAY, affine=np.diag([2.0, 3.0, 4.0, 1.0]))
    image.set_sform(None, code=0)
    image.set_qform(None, code=0)
    nib.save(image, tmp_path / "bare.nii")
    volume = read_volume(tmp_path / "bare.nii")
    assert volume.origin == (0.0, 0.0, 0.0) and volume.direction == IDENTITY_DIRECTION


def test_nrrd_in_ras_space_is_converted_to_lps(tmp_path: Path) -> None:
    header = {
        "space": "right-anterior-superior",
        "space directions": np.diag(SPACING),
        "space origin": np.array(ORIGIN),
        "kinds": ["domain"] * 3,
    }
    nrrd.write(str(tmp_path / "ras.nrrd"), ARRAY, header)
    volume = read_volume(tmp_path / "ras.nrrd")
    assert volume.origin == pytest.approx((-ORIGIN[0], -ORIGIN[1], ORIGIN[2]))
    np.testing.assert_allclose(volume.direction, np.diag([-1.0, -1.0, 1.0]))


def test_axis_order_permutes_the_direction_not_the_origin(tmp_path: Path) -> None:
    path = write_volume(tmp_path / "scan.mha", Volume(ARRAY, SPACING, {}, ORIGIN, DIRECTION))
    volume = read_volume(path, axis_order="LSD")  # file j is the sweep, file k the depth
    assert volume.origin == pytest.approx(ORIGIN)
    np.testing.assert_allclose(np.asarray(volume.direction), np.asarray(DIRECTION)[:, [0, 2, 1]])


def test_dicom_geometry_is_the_image_plane(tmp_path: Path) -> None:
    path = write_volume(tmp_path / "scan.dcm", Volume(ARRAY, SPACING, {}, ORIGIN, DIRECTION))
    dataset = pydicom.dcmread(path)
    np.testing.assert_allclose(np.asarray(dataset.ImagePositionPatient, float), ORIGIN)
    row_and_column = np.asarray(dataset.ImageOrientationPatient, float)
    np.testing.assert_allclose(row_and_column, np.asarray(DIRECTION).T[:2].ravel())


def test_a_2d_image_gets_a_right_handed_sweep_axis(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(ARRAY[:, :, 0].T.copy())
    image.SetOrigin((1.0, 2.0))
    image.SetDirection((0.0, 1.0, 1.0, 0.0))  # lateral along P, depth along L
    sitk.WriteImage(image, str(tmp_path / "frame.mha"))
    volume = read_volume(tmp_path / "frame.mha")
    assert volume.origin == (1.0, 2.0, 0.0)
    np.testing.assert_allclose(volume.direction, [[0, 1, 0], [1, 0, 0], [0, 0, -1]])


def test_real_spine_phantom_origin_is_itks(real_data: Path) -> None:
    path = real_data / "plus" / "SpinePhantomFreehandReconstructed.mha"
    image = sitk.ReadImage(str(path))
    volume = read_volume(path)
    np.testing.assert_allclose(volume.origin, image.GetOrigin())
    np.testing.assert_allclose(np.ravel(volume.direction), image.GetDirection())


def test_degenerate_header_geometry_is_ignored_not_fatal(tmp_path: Path) -> None:
    header = {
        "space": "left-posterior-superior",
        "space directions": np.array([[0.3, 0, 0], [0.6, 0, 0], [0, 0, 0.75]]),  # parallel
        "space origin": np.array([np.inf, 0.0, 0.0]),
        "kinds": ["domain"] * 3,
    }
    nrrd.write(str(tmp_path / "bad.nrrd"), ARRAY, header)
    volume = read_volume(tmp_path / "bad.nrrd")
    assert volume.origin == (0.0, 0.0, 0.0) and volume.direction == IDENTITY_DIRECTION
    np.testing.assert_array_equal(volume.array, ARRAY)
