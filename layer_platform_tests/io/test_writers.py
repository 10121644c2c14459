"""write_volume: atomic replacement, and dtypes that downstream tools can open."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from layer_platform.io import Volume, read_volume, write_volume
from layer_platform.io.volume import LPS_RAS_FLIP
from layer_platform.io.writers import process_owner, staging_prefix

SPACING = (0.5, 0.25, 1.0)


@pytest.mark.parametrize(
    ("dtype", "stored"),
    [(np.int64, np.uint8), (np.bool_, np.uint8), (np.int16, np.int16), (np.float64, np.float32)],
)
@pytest.mark.parametrize("ext", ["nii.gz", "nrrd", "mha"])
def test_stored_dtype(tmp_path: Path, ext: str, dtype: type, stored: type) -> None:
    labels = (np.arange(4 * 6 * 2).reshape(4, 6, 2) % 7).astype(dtype)
    volume = read_volume(write_volume(tmp_path / f"layers.{ext}", Volume(labels, SPACING)))
    assert volume.array.dtype == stored
    np.testing.assert_array_equal(volume.array, labels.astype(stored))


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16])
@pytest.mark.parametrize("ext", ["nii", "nii.gz"])
def test_nifti_bytes_are_those_nibabel_saves_for_the_image(
    tmp_path: Path, ext: str, dtype: type
) -> None:
    """The header written directly is the header ``nib.save`` derives for the same image."""
    rng = np.random.default_rng(0)
    volume = Volume(
        (rng.random((5, 7, 3)) * 100).astype(dtype),
        SPACING,
        origin=(-4.0, 12.5, 3.0),
        direction=((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    )
    ours = write_volume(tmp_path / f"ours.{ext}", volume)
    affine = LPS_RAS_FLIP @ volume.affine
    image = nib.Nifti1Image(volume.array, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    image.header.set_xyzt_units("mm")
    nib.save(image, theirs := tmp_path / f"theirs.{ext}")

    def content(path: Path) -> bytes:
        return gzip.decompress(path.read_bytes()) if ext == "nii.gz" else path.read_bytes()

    assert content(Path(ours)) == content(theirs)


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path: Path) -> None:
    original = Volume(np.full((4, 6, 2), 7, dtype=np.uint8), SPACING)
    path = write_volume(tmp_path / "scan" / "bmode.dcm", original)
    with pytest.raises(ValueError, match="integer"):  # fails inside the DICOM writer
        write_volume(path, Volume(np.zeros((4, 6, 2), dtype=np.float32), SPACING))
    assert [p.name for p in path.parent.iterdir()] == ["bmode.dcm"]
    np.testing.assert_array_equal(read_volume(path).array, original.array)


@pytest.mark.parametrize("ext", ["mhd", "nhdr"])
def test_detached_formats_replace_header_and_data(tmp_path: Path, ext: str) -> None:
    first = Volume(np.zeros((4, 6, 2), dtype=np.uint8), SPACING)
    second = Volume(np.full((4, 6, 2), 9, dtype=np.uint8), SPACING)
    write_volume(tmp_path / f"bmode.{ext}", first)
    path = write_volume(tmp_path / f"bmode.{ext}", second)
    assert len(list(tmp_path.iterdir())) == 2  # header and its data file, nothing else
    np.testing.assert_array_equal(read_volume(path).array, second.array)


@pytest.mark.parametrize("ext", ["nii", "nhdr"])
def test_a_dead_writers_staging_is_swept_and_a_live_ones_kept(tmp_path: Path, ext: str) -> None:
    """A staging file (one-file formats) or folder (detached ones) of a writer killed
    mid-way goes with the next write of the same file; another live writer's stays."""
    name = f"bmode.{ext}"
    dead = tmp_path / f"{staging_prefix(name)}999999999@{process_owner().split('@')[1]}.ab12"
    live = tmp_path / f"{staging_prefix(name)}{process_owner()}.cd34"
    dead_file, live_file = Path(f"{dead}.{name}"), Path(f"{live}.{name}")
    dead.mkdir()
    for path in (dead_file, live_file):
        path.write_bytes(b"half")
    path = write_volume(tmp_path / name, Volume(np.zeros((4, 6, 2), dtype=np.uint8), SPACING))
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert left == [live_file.name]
    assert read_volume(path).shape == (4, 6, 2)


def test_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        write_volume(tmp_path / "bmode.tif", Volume(np.zeros((2, 2, 2)), SPACING))
