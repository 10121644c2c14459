"""Every bad-input case from the landing contract is quarantined with a reason; good scans go on."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from layer_platform.errors import ScanError
from layer_platform.ingestion.guard import guarded
from layer_platform.ingestion.landing import discover, incomplete_folders
from layer_platform.ingestion.manifest import refresh_manifest
from layer_platform.ingestion.policy import IntakePolicy
from layer_platform.io import Volume, write_volume
from layer_platform.warehouse.store import Warehouse

SHAPE = (8, 24, 4)
SPACING = (0.5, 0.25, 1.0)


def layered_labels(shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """Six flat layers along depth (four rows each), dermis at the skin."""
    labels = np.zeros(shape, dtype=np.uint8)
    for index in range(6):
        labels[:, index * 4 : (index + 1) * 4, :] = index + 1
    return labels


def bmode_array(shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(10, 250, size=shape).astype(np.uint8)


def write_scan(
    landing: Path,
    folder: str,
    *,
    scan_id: str | None = None,
    subject_id: str = "P01",
    label: str | None = "MP",
    bmode: np.ndarray | None = None,
    swe: Volume | None = None,
    layers: np.ndarray | None = None,
    ext: str = "nii",
    meta: dict | None = None,
) -> Path:
    """A scan folder in the landing contract; ``scan.json`` written last."""
    path = landing / folder
    path.mkdir(parents=True)
    write_volume(
        path / f"bmode.{ext}", Volume(bmode if bmode is not None else bmode_array(), SPACING)
    )
    if swe is not None:
        write_volume(path / "swe.nii", swe)
    if layers is not None:
        write_volume(path / "layers.nii", Volume(layers, SPACING))
    document = {
        "scan_id": scan_id or folder,
        "subject_id": subject_id,
        "label": label,
        **(meta or {}),
    }
    (path / "scan.json").write_text(json.dumps(document))
    return path


def refresh(landing: Path, tmp_path: Path) -> tuple[Warehouse, object]:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    return warehouse, refresh_manifest(landing, warehouse)


def corrupt_gzip(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BadCase = Callable[[Path], None]


def _nan_bmode(landing: Path) -> None:
    data = bmode_array().astype(np.float32)
    data[1, 2, 3] = np.nan
    write_scan(landing, "bad", bmode=data)


def _inf_bmode(landing: Path) -> None:
    data = bmode_array().astype(np.float32)
    data[0, 0, 0] = np.inf
    write_scan(landing, "bad", bmode=data)


def _truncated_gzip(landing: Path) -> None:
    path = write_scan(landing, "bad", ext="nii.gz")
    corrupt_gzip(path / "bmode.nii.gz")


def _truncated_raw(landing: Path) -> None:
    path = write_scan(landing, "bad")
    data = (path / "bmode.nii").read_bytes()
    (path / "bmode.nii").write_bytes(data[: len(data) - 200])


def _empty_file(landing: Path) -> None:
    path = write_scan(landing, "bad")
    (path / "bmode.nii").write_bytes(b"")


def _two_d(landing: Path) -> None:
    write_scan(landing, "bad", bmode=bmode_array((8, 24, 1)))


def _tiny(landing: Path) -> None:
    write_scan(landing, "bad", bmode=bmode_array((1, 1, 1)))


def _misaligned_swe(landing: Path) -> None:
    swe = Volume(np.full((4, 6, 2), 20.0, dtype=np.float32), (2.0, 2.0, 2.0))  # 8×12×4 mm vs 4×6×4
    write_scan(landing, "bad", swe=swe)


def _negative_swe(landing: Path) -> None:
    swe = Volume(np.full((4, 12, 2), -5.0, dtype=np.float32), (1.0, 0.5, 2.0))
    write_scan(landing, "bad", swe=swe)


def _labels_out_of_range(landing: Path) -> None:
    labels = layered_labels()
    labels[0, 0, 0] = 9
    write_scan(landing, "bad", layers=labels)


def _upside_down_layers(landing: Path) -> None:
    write_scan(landing, "bad", layers=layered_labels()[:, ::-1, :].copy())


def _symlinked_bmode(landing: Path) -> None:
    outside = landing.parent / "outside.nii"
    write_volume(outside, Volume(bmode_array(), SPACING))
    path = write_scan(landing, "bad")
    (path / "bmode.nii").unlink()
    os.symlink(outside, path / "bmode.nii")


def _malformed_json(landing: Path) -> None:
    path = write_scan(landing, "bad")
    (path / "scan.json").write_text('{"scan_id": "bad", ')


def _unknown_label(landing: Path) -> None:
    write_scan(landing, "bad", label="chronic")


def _traversal_scan_id(landing: Path) -> None:
    write_scan(landing, "bad", scan_id="../../etc/passwd")


def _no_bmode(landing: Path) -> None:
    path = write_scan(landing, "bad")
    (path / "bmode.nii").unlink()


BAD_CASES: dict[str, tuple[BadCase, str]] = {
    "nan voxels": (_nan_bmode, "NaN/inf"),
    "inf voxels": (_inf_bmode, "NaN/inf"),
    "truncated gzip": (_truncated_gzip, "truncated"),
    "truncated raw data": (_truncated_raw, "truncated"),
    "empty file": (_empty_file, "empty"),
    "2D image": (_two_d, "3D scan"),
    "1x1x1 volume": (_tiny, "3D scan"),
    "misaligned swe": (_misaligned_swe, "cannot be aligned"),
    "negative swe": (_negative_swe, "negative"),
    "labels outside 0..6": (_labels_out_of_range, "outside 0..6"),
    "upside-down layers": (_upside_down_layers, "upside down"),
    "symlink": (_symlinked_bmode, "symbolic link"),
    "malformed scan.json": (_malformed_json, "not valid JSON"),
    "unknown label": (_unknown_label, "unknown label"),
    "path traversal scan_id": (_traversal_scan_id, "not allowed"),
    "no bmode file": (_no_bmode, "no bmode"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_scan_is_quarantined_and_the_rest_go_on(case: str, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_scan(landing, "good1", subject_id="G1", layers=layered_labels())
    write_scan(landing, "good2", subject_id="G2", label="control")
    make_bad, fragment = BAD_CASES[case]
    make_bad(landing)

    warehouse, update = refresh(landing, tmp_path)

    assert sorted(update.accepted_ids) == ["good1", "good2"]
    quarantine = warehouse.query("SELECT folder, scan_id, reason FROM quarantine")
    assert quarantine["folder"].tolist() == ["bad"]
    reason = quarantine["reason"].iloc[0]
    assert fragment and fragment.lower() in reason.lower(), reason  # an empty one proves nothing
    assert int(warehouse.query("SELECT count(*) AS n FROM scans")["n"].iloc[0]) == 2


def test_duplicate_scan_id_keeps_the_registered_scan(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_scan(landing, "S1", subject_id="P1")
    warehouse, _ = refresh(landing, tmp_path)
    write_scan(landing, "S1_reexport", scan_id="S1", subject_id="P1")
    update = refresh_manifest(landing, warehouse)

    assert update.accepted_ids == []
    scans = warehouse.query("SELECT scan_id, folder FROM scans")
    assert scans.to_dict("records") == [{"scan_id": "S1", "folder": "S1"}]
    reason = warehouse.query("SELECT reason FROM quarantine WHERE folder = 'S1_reexport'")
    assert "duplicate scan_id" in reason["reason"].iloc[0]


def test_subject_with_two_labels_quarantines_the_newcomer(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_scan(landing, "A_left", subject_id="A", label="MP")
    write_scan(landing, "A_right", subject_id="A", label="control")
    warehouse, update = refresh(landing, tmp_path)
    assert update.accepted_ids == ["A_left"]
    assert "share one label" in warehouse.query("SELECT reason FROM quarantine")["reason"].iloc[0]


def test_incomplete_folder_waits_and_unchanged_folders_are_not_reread(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    path = write_scan(landing, "S1")
    (landing / "S2").mkdir()
    write_volume(landing / "S2" / "bmode.nii", Volume(bmode_array(), SPACING))

    warehouse, update = refresh(landing, tmp_path)
    assert update.accepted_ids == ["S1"]
    assert incomplete_folders(landing) == ["S2"]
    assert [f.name for f in discover(landing)] == ["S1"]

    again = refresh_manifest(landing, warehouse)
    assert (again.accepted_ids, again.unchanged) == ([], 1)

    (landing / "S2" / "scan.json").write_text(
        json.dumps({"scan_id": "S2", "subject_id": "P2", "label": "control"})
    )
    (path / "scan.json").write_text(
        json.dumps({"scan_id": "S1", "subject_id": "P01", "label": "MP", "note": "re-export"})
    )
    os.utime(path / "scan.json", ns=(1, 1))
    third = refresh_manifest(landing, warehouse)
    assert sorted(third.accepted_ids) == ["S1", "S2"]
    assert int(warehouse.query("SELECT count(*) AS n FROM scans")["n"].iloc[0]) == 2


def test_a_broken_reexport_keeps_the_registered_version(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    path = write_scan(landing, "S1", ext="nii.gz")
    warehouse, _ = refresh(landing, tmp_path)
    first_hash = warehouse.query("SELECT content_hash FROM scans")["content_hash"].iloc[0]

    corrupt_gzip(path / "bmode.nii.gz")
    update = refresh_manifest(landing, warehouse)

    assert update.accepted_ids == [] and len(update.quarantined) == 1
    assert warehouse.query("SELECT content_hash FROM scans")["content_hash"].iloc[0] == first_hash


def test_scan_json_phi_never_reaches_the_warehouse(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_scan(
        landing, "S1", meta={"patient_name": "DOE^JANE", "mrn": "123-45-678", "operator": "tech7"}
    )
    warehouse = Warehouse(tmp_path / "w.duckdb")
    refresh_manifest(landing, warehouse, policy=IntakePolicy(extra_keys=frozenset({"operator"})))
    metadata = json.loads(warehouse.query("SELECT metadata FROM scans")["metadata"].iloc[0])
    assert metadata == {"operator": "tech7"}, "only the allowlisted key is kept"
    dump = (tmp_path / "w.duckdb").read_bytes()
    assert b"DOE^JANE" not in dump and b"123-45-678" not in dump


def test_gzip_helper_really_truncates(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"a" * 10_000))
    corrupt_gzip(path)
    with pytest.raises(EOFError), gzip.open(path) as handle:
        handle.read()


@pytest.mark.parametrize(
    "error",
    [RecursionError("DOE^JANE"), MemoryError(), IsADirectoryError(21, "DOE^JANE"), ValueError("x")],
)
def test_an_unexpected_exception_becomes_a_reason_naming_the_step_and_class(
    error: Exception,
) -> None:
    def fail() -> None:
        raise error

    with pytest.raises(ScanError) as caught, guarded("reading the bmode volume"):
        fail()
    reason = caught.value.reason
    assert reason.startswith("reading the bmode volume failed unexpectedly")
    assert type(error).__name__ in reason and "DOE" not in reason
    assert caught.value.__cause__ is None


def test_a_scan_error_passes_through_the_guard_unchanged() -> None:
    with pytest.raises(ScanError, match=r"^the original$"), guarded("a step"):
        raise ScanError("the original")
