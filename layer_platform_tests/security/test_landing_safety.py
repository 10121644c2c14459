"""The landing zone reads plain files inside itself only: no symlinks, no paths leading out.

Nothing that arrives in the landing zone may make intake read bytes elsewhere on the host: a
symlinked scan folder or file, a ``..`` in the one ``scan.json`` field that becomes a path
(``scan_id``: artifact folders and partition keys are named after it), and the data-file line of
a detached header (``.mhd`` ``ElementDataFile``, ``.nhdr`` ``data file``) are all refused, and
the good scans beside them are registered.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from layer_platform.ingestion.manifest import refresh_manifest
from layer_platform.io import read_volume
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.ingestion.test_intake import SHAPE, SPACING, bmode_array, write_scan

SECRET = b"outside-the-landing-zone"


def _landing(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_scan(landing, "good1", subject_id="G1")
    return landing


def _refresh(landing: Path, tmp_path: Path) -> tuple[list[str], dict[str, tuple[str, str]]]:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    update = refresh_manifest(landing, warehouse)
    rows = warehouse.query("SELECT folder, scan_id, reason FROM quarantine")
    return sorted(update.accepted_ids), {
        r.folder: (r.scan_id, r.reason) for r in rows.itertuples(index=False)
    }


def _outside_scan(tmp_path: Path) -> Path:
    """A complete, valid scan folder that lives outside the landing zone."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    return write_scan(elsewhere, "outsider", subject_id="X1")


def test_a_symlinked_scan_folder_is_refused(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    os.symlink(_outside_scan(tmp_path), landing / "linked")
    accepted, quarantined = _refresh(landing, tmp_path)
    assert accepted == ["good1"], "the outside scan must not be registered through the link"
    assert "symbolic link" in quarantined["linked"][1]


def test_a_symlink_to_another_landing_folder_is_refused_too(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    os.symlink(landing / "good1", landing / "alias")
    accepted, quarantined = _refresh(landing, tmp_path)
    assert accepted == ["good1"] and "symbolic link" in quarantined["alias"][1]


@pytest.mark.parametrize("name", ["scan.json", "swe.nii", "layers.nii"])
def test_a_symlinked_file_is_refused(tmp_path: Path, name: str) -> None:
    landing = _landing(tmp_path)
    folder = write_scan(landing, "bad")
    target = _outside_scan(tmp_path) / ("scan.json" if name == "scan.json" else "bmode.nii")
    (folder / name).unlink(missing_ok=True)
    os.symlink(target, folder / name)
    accepted, quarantined = _refresh(landing, tmp_path)
    assert accepted == ["good1"]
    assert f"{name} is a symbolic link" in quarantined["bad"][1]


def test_a_symlinked_landing_root_is_fine(tmp_path: Path) -> None:
    """Refusing links inside the zone must not refuse a zone mounted through a link."""
    real = _landing(tmp_path)
    linked_root = tmp_path / "landing-link"
    os.symlink(real, linked_root)
    accepted, quarantined = _refresh(linked_root, tmp_path)
    assert accepted == ["good1"] and quarantined == {}


@pytest.mark.parametrize("scan_id", ["..", "../outsider", "a/../../etc", "/etc/passwd", ".hidden"])
def test_scan_id_is_never_a_path(tmp_path: Path, scan_id: str) -> None:
    landing = _landing(tmp_path)
    write_scan(landing, "bad", scan_id=scan_id)
    accepted, quarantined = _refresh(landing, tmp_path)
    assert accepted == ["good1"]
    scan, reason = quarantined["bad"]
    assert scan is None and "is not allowed" in reason


def _raw_metaimage(folder: Path, data_file: str) -> None:
    (folder / "bmode.nii").unlink()
    dims = " ".join(map(str, SHAPE))
    (folder / "bmode.mhd").write_text(
        f"ObjectType = Image\nNDims = 3\nDimSize = {dims}\nElementSpacing = 0.5 0.25 1\n"
        f"ElementType = MET_UCHAR\nElementDataFile = {data_file}\n"
    )


def _raw_nrrd(folder: Path, data_file: str) -> None:
    (folder / "bmode.nii").unlink()
    sizes = " ".join(map(str, SHAPE))
    (folder / "bmode.nhdr").write_text(
        f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: {sizes}\nspacings: 0.5 0.25 1\n"
        f"encoding: raw\ndata file: {data_file}\n"
    )


@pytest.mark.parametrize("write_header", [_raw_metaimage, _raw_nrrd], ids=["mhd", "nhdr"])
@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_a_detached_header_cannot_point_outside_its_folder(
    tmp_path: Path, write_header, where: str
) -> None:
    landing = _landing(tmp_path)
    folder = write_scan(landing, "bad")
    outside = tmp_path / "secret.raw"
    outside.write_bytes(bmode_array().tobytes(order="F"))  # a perfectly readable volume
    if where == "parent":
        data_file = "../../secret.raw"
    elif where == "absolute":
        data_file = str(outside)
    else:
        os.symlink(outside, folder / "bmode.raw")
        data_file = "bmode.raw"
    write_header(folder, data_file)
    accepted, quarantined = _refresh(landing, tmp_path)
    assert accepted == ["good1"], "the volume outside the folder must not be read"
    scan, reason = quarantined["bad"]
    assert scan == "bad"
    assert ("symbolic link" if where == "symlink" else "beside it in the scan folder") in reason


@pytest.mark.parametrize("write_header", [_raw_metaimage, _raw_nrrd], ids=["mhd", "nhdr"])
def test_a_detached_header_beside_its_data_is_read(tmp_path: Path, write_header) -> None:
    """The control for the test above: the same header with its data beside it is accepted."""
    landing = _landing(tmp_path)
    folder = write_scan(landing, "ok", subject_id="G2")
    (folder / "bmode.raw").write_bytes(bmode_array().tobytes(order="F"))
    write_header(folder, "bmode.raw")
    accepted, quarantined = _refresh(landing, tmp_path)
    assert accepted == ["good1", "ok"] and quarantined == {}
    header = next(folder.glob("bmode.*h*"))
    volume = read_volume(header)
    assert np.array_equal(volume.array, bmode_array()) and volume.spacing == SPACING
