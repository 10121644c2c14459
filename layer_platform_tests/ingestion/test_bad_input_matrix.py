"""The bad-input matrix: every way a landing folder can be wrong, each refused on its own.

It extends the foundation's cases (``test_intake.BAD_CASES``, imported, not copied) with the
reliability cases: empty and cut files in every compressed format, 2D and 4D images, all-zero
and 1×1×1 volumes, headers declaring enormous sizes (refused before any buffer is allocated),
non-UTF-8 and very long names, wrongly typed ``scan.json`` fields, a subject with two labels,
negative SWE and upside-down layers. For each case the quarantine row names the folder, the scan
(where ``scan.json`` could be read) and the cause; the good scans of the same landing zone are
registered; the count of accepted scans equals the count of good inputs. A last test lands every
case at once beside good scans of every format, and re-runs intake to show nothing is re-read.
"""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from layer_platform.ingestion.landing import display_name
from layer_platform.ingestion.manifest import refresh_manifest
from layer_platform.io import Volume, write_volume
from layer_platform.io.dicom import write_dicom
from layer_platform_tests.ingestion.sandbox import run_batch, violations
from layer_platform_tests.ingestion.test_intake import (
    BAD_CASES,
    SHAPE,
    SPACING,
    bmode_array,
    layered_labels,
    refresh,
    write_scan,
)

#: An SWE volume covering the same 4 × 6 × 4 mm field of view as the test B-mode, coarser.
SWE_SHAPE, SWE_SPACING = (4, 12, 2), (1.0, 0.5, 2.0)


@dataclass(frozen=True)
class Case:
    """One bad landing folder and what its quarantine row must say.

    Args:
        build: writes the folder into the landing zone given to it.
        cause: a fragment the quarantine reason must contain (case-insensitive).
        scan_id: the scan the error names; None where ``scan.json`` is unreadable or unsafe.
        folder: the landing folder's name as stored (non-UTF-8 bytes as ``\\xNN``).
        bounded: inspected in a sandboxed child, the peak RSS must stay under
            ``sandbox.RSS_BOUND_MIB`` (``test_bounded_cases_stay_under_the_rss_bound_in_a_child``).
    """

    build: Callable[[Path], object]
    cause: str
    scan_id: str | None = "bad"
    folder: str = "bad"
    bounded: bool = False


# ---- the foundation's cases (#2), with the scan each error names and a cause where it had none
_UNNAMED = {"malformed scan.json", "path traversal scan_id"}  # scan.json unreadable / unsafe
_CAUSE = {"truncated gzip": "truncated", "truncated raw data": "truncated"}
FOUNDATION = {
    name: Case(build, _CAUSE.get(name, cause), scan_id=None if name in _UNNAMED else "bad")
    for name, (build, cause) in BAD_CASES.items()
}


# ---- helpers that write the new cases
def _with_bmode_bytes(landing: Path, name: str, data: bytes) -> None:
    """A folder whose only volume is ``name`` holding exactly ``data``."""
    path = write_scan(landing, "bad")
    (path / "bmode.nii").unlink()
    (path / name).write_bytes(data)


def _with_scan_json(landing: Path, document: object | bytes) -> None:
    path = write_scan(landing, "bad")
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    (path / "scan.json").write_bytes(raw)


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _noise(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """Incompressible samples, so a cut lands inside the compressed voxel stream."""
    return np.random.default_rng(3).integers(10, 250, size=shape).astype(np.uint8)


def _cut_mid_stream(ext: str) -> Callable[[Path], None]:
    def build(landing: Path) -> None:
        path = write_scan(landing, "bad", bmode=_noise(), ext=ext)
        _cut(path / f"bmode.{ext}", (path / f"bmode.{ext}").stat().st_size // 2)

    return build


def _gzip_cut_in_header(landing: Path) -> None:
    path = write_scan(landing, "bad", ext="nii.gz")
    _cut(path / "bmode.nii.gz", 30)  # inside the deflated NIfTI header


def _empty(role: str) -> Callable[[Path], None]:
    def build(landing: Path) -> None:
        swe = Volume(np.full(SWE_SHAPE, 20.0, np.float32), SWE_SPACING)
        path = write_scan(landing, "bad", swe=swe, layers=layered_labels(), ext="nii.gz")
        next(path.glob(f"{role}.*")).write_bytes(b"")

    return build


def _nifti_2d(landing: Path) -> None:
    image = nib.Nifti1Image(bmode_array()[:, :, 0], np.diag([*SPACING, 1.0]))
    _with_bmode_bytes(landing, "bmode.nii", image.to_bytes())


def _metaimage_2d(landing: Path) -> None:
    path = write_scan(landing, "bad")
    (path / "bmode.nii").unlink()
    image = sitk.GetImageFromArray(bmode_array()[:, :, 0].T.copy())  # SimpleITK: (j, i)
    image.SetSpacing(SPACING[:2])
    sitk.WriteImage(image, str(path / "bmode.mha"))


def _nifti_4d(landing: Path) -> None:
    series = np.stack([bmode_array()] * 3, axis=-1)  # three time points
    _with_bmode_bytes(landing, "bmode.nii", nib.Nifti1Image(series, np.eye(4)).to_bytes())


def _nrrd_4d(landing: Path) -> None:
    path = write_scan(landing, "bad")
    (path / "bmode.nii").unlink()
    series = np.stack([bmode_array()] * 2, axis=-1)
    nrrd.write(str(path / "bmode.nrrd"), series, {"spacings": [*SPACING, 1.0]})


def _all_zero(landing: Path) -> None:
    write_scan(landing, "bad", bmode=np.zeros(SHAPE, np.uint8))


def _one_voxel(ext: str) -> Callable[[Path], None]:
    def build(landing: Path) -> None:
        write_scan(landing, "bad", bmode=np.full((1, 1, 1), 100, np.uint8), ext=ext)

    return build


def _nifti2_header(shape: tuple[int, int, int]) -> bytes:
    header = nib.Nifti2Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.uint8)
    header.set_zooms((1.0, 1.0, 1.0))
    return header.binaryblock + b"\x00" * 4  # no extensions; the voxels would follow


def _enormous_nifti(landing: Path) -> None:
    _with_bmode_bytes(landing, "bmode.nii", _nifti2_header((100_000,) * 3) + b"\x01" * 64)


def _enormous_nrrd(landing: Path) -> None:
    header = b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 100000 100000 100000\n"
    header += b"spacings: 1 1 1\nencoding: raw\n\n"
    _with_bmode_bytes(landing, "bmode.nrrd", header + b"\x01" * 64)


def _metaimage_header(dims: str, *extra: str) -> bytes:
    lines = ["ObjectType = Image", "NDims = 3", f"DimSize = {dims}", "ElementSpacing = 1 1 1"]
    lines += ["ElementType = MET_UCHAR", *extra, "ElementDataFile = LOCAL"]
    return "\n".join(lines).encode() + b"\n"


def _enormous_metaimage(landing: Path) -> None:
    data = _metaimage_header("100000 100000 100000") + b"\x01" * 64
    _with_bmode_bytes(landing, "bmode.mha", data)


def _enormous_dicom(landing: Path) -> None:
    path = write_scan(landing, "bad")
    (path / "bmode.nii").unlink()
    write_dicom(path / "bmode.dcm", bmode_array(), SPACING)
    ds = pydicom.dcmread(path / "bmode.dcm")
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 100_000
    ds.save_as(path / "bmode.dcm")


#: 512³ uint8 = 128 MiB: under the size caps, so only the compressed stream can tell the lie.
_PLAUSIBLE = (512, 512, 512)


def _lying_nifti_gz(landing: Path) -> None:
    body = gzip.compress(_nifti2_header(_PLAUSIBLE) + b"\x01" * 64)
    _with_bmode_bytes(landing, "bmode.nii.gz", body)


def _lying_metaimage_zlib(landing: Path) -> None:
    body = zlib.compress(b"\x01" * 64)
    header = _metaimage_header(
        " ".join(map(str, _PLAUSIBLE)), "CompressedData = True", f"CompressedDataSize = {len(body)}"
    )
    _with_bmode_bytes(landing, "bmode.mha", header + body)


def _gzip_bomb_nrrd(landing: Path) -> None:
    """A header declaring the test B-mode's 768 bytes over a stream that inflates to 64 MiB."""
    sizes = " ".join(map(str, SHAPE))
    header = f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: {sizes}\nspacings: 0.5 0.25 1\n"
    bomb = gzip.compress(bytes(64 << 20), compresslevel=9)  # ~64 kB on disk
    _with_bmode_bytes(landing, "bmode.nrrd", header.encode() + b"encoding: gzip\n\n" + bomb)


def _non_utf8_folder(landing: Path) -> None:
    path = write_scan(landing, "staging", scan_id="bad")
    os.rename(os.fsencode(path), os.fsencode(landing) + b"/bad\xff\xfe")


def _subject_with_two_labels(landing: Path) -> None:
    write_scan(landing, "good1_rescan", subject_id="G1", label="control")  # good1: G1 is MP


def _duplicate_scan_id(landing: Path) -> None:
    write_scan(landing, "good1_copy", scan_id="good1", subject_id="G1")


def _negative_swe_voxel(landing: Path) -> None:
    kpa = np.full(SWE_SHAPE, 20.0, np.float32)
    kpa[0, :3, :] = np.nan  # the no-signal band near the skin is fine...
    kpa[2, 6, 1] = -0.5  # ...a negative stiffness is not
    write_scan(landing, "bad", swe=Volume(kpa, SWE_SPACING))


def _upside_down_nrrd_layers(landing: Path) -> None:
    path = write_scan(landing, "bad")
    write_volume(path / "layers.nrrd", Volume(layered_labels()[:, ::-1, :].copy(), SPACING))


_DOC = {"scan_id": "bad", "subject_id": "P01", "label": "MP"}


# ---- round two (#18): hostile structure, detached files, codecs, PHI channels
def _scan_json_deep(landing: Path) -> None:
    _with_scan_json(landing, b'{"scan_id": "bad", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")


def _scan_json_huge(landing: Path) -> None:
    padding = json.dumps({**_DOC, "pad": "x" * (2 << 20)}).encode()
    _with_scan_json(landing, padding)


def _scan_json_directory(landing: Path) -> None:
    path = write_scan(landing, "bad")
    (path / "scan.json").unlink()
    (path / "scan.json").mkdir()


def _bmode_directory(landing: Path) -> None:
    path = write_scan(landing, "bad")
    (path / "bmode.nii").unlink()
    (path / "bmode.nii").mkdir()


def _infinite_spacing(landing: Path) -> None:
    raw = json.dumps(_DOC).encode()[:-1] + b', "spacing_mm": [1e999, 0.25, 1]}'
    _with_scan_json(landing, raw)


def _nan_spacing(landing: Path) -> None:
    _with_scan_json(landing, json.dumps(_DOC).encode()[:-1] + b', "spacing_mm": [NaN, 1, 1]}')


def _detached(ext: str, data_file: str, tail: str = "") -> Callable[[Path], None]:
    """A detached header naming ``data_file`` (then ``tail`` lines), beside right-sized decoys.

    A readable volume waits outside the folder (``../../secret.raw``, where a ``LIST`` points):
    with the decoy in place only the name rule can refuse the header.
    """

    def build(landing: Path) -> None:
        volume = bmode_array().tobytes(order="F")
        (landing.parent / "secret.raw").write_bytes(volume)
        path = write_scan(landing, "bad")
        (path / "bmode.nii").unlink()
        dims = " ".join(map(str, SHAPE))
        if ext == "mhd":
            text = (
                f"ObjectType = Image\nNDims = 3\nDimSize = {dims}\nElementSpacing = 0.5 0.25 1\n"
                f"ElementType = MET_UCHAR\nElementDataFile = {data_file}\n{tail}"
            )
        else:
            text = (
                f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: {dims}\nspacings: 0.5 0.25 1\n"
                f"encoding: raw\ndata file: {data_file}\n{tail}"
            )
        (path / f"bmode.{ext}").write_text(text)
        (path / data_file).write_bytes(volume)  # the name exactly as written
        if "%" in data_file:  # and the pattern's first expansion
            (path / (data_file.split()[0] % 0)).write_bytes(volume)

    return build


def _nrrd_raw(landing: Path, header: str, data: bytes) -> None:
    sizes = " ".join(map(str, SHAPE))
    text = f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: {sizes}\nspacings: 0.5 0.25 1\n{header}\n"
    _with_bmode_bytes(landing, "bmode.nrrd", text.encode() + data)


def _nrrd_negative_skip(landing: Path) -> None:
    _nrrd_raw(landing, "encoding: gzip\nbyte skip: -5\n", gzip.compress(bmode_array().tobytes("F")))


def _nrrd_bzip2_bomb(landing: Path) -> None:
    _nrrd_raw(landing, "encoding: bzip2\n", bz2.compress(bytes(64 << 20), 9))


def _raw_surplus(landing: Path) -> None:
    _nrrd_raw(landing, "encoding: raw\n", bmode_array().tobytes("F") + bytes(4 << 20))


def _dicom(landing: Path, **changes: object) -> Path:
    path = write_scan(landing, "bad")
    (path / "bmode.nii").unlink()
    write_dicom(path / "bmode.dcm", bmode_array(), SPACING)
    ds = pydicom.dcmread(path / "bmode.dcm")
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path / "bmode.dcm")
    return path / "bmode.dcm"


def _deflated_dicom(landing: Path) -> None:
    dcm = _dicom(landing)
    ds = pydicom.dcmread(dcm)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    ds.save_as(dcm, enforce_file_format=True)


NEW: dict[str, Case] = {
    "empty scan.json": Case(lambda p: _with_scan_json(p, b""), "not valid JSON", scan_id=None),
    "empty bmode.nii.gz": Case(_empty("bmode"), "empty"),
    "empty swe file": Case(_empty("swe"), "empty"),
    "empty layers file": Case(_empty("layers"), "empty"),
    "gzip cut inside the header (.nii.gz)": Case(_gzip_cut_in_header, "truncated"),
    "gzip cut mid-stream (.nii.gz)": Case(_cut_mid_stream("nii.gz"), "truncated"),
    "gzip cut mid-stream (.nrrd)": Case(_cut_mid_stream("nrrd"), "truncated"),
    "zlib cut mid-stream (.mha)": Case(_cut_mid_stream("mha"), "truncated"),
    "2D image (NIfTI, 2 axes)": Case(_nifti_2d, "not a 3D scan"),
    "2D image (MetaImage)": Case(_metaimage_2d, "not a 3D scan"),
    "4D image (NIfTI time series)": Case(_nifti_4d, "4D"),
    "4D image (NRRD)": Case(_nrrd_4d, "4D"),
    "all-zero bmode": Case(_all_zero, "all zeros"),
    "1x1x1 volume (MetaImage)": Case(_one_voxel("mha"), "not a 3D scan"),
    "1x1x1 volume (DICOM)": Case(_one_voxel("dcm"), "not a 3D scan"),
    "enormous header: NIfTI-2 100000^3": Case(_enormous_nifti, "voxels", bounded=True),
    "enormous header: NRRD 100000^3": Case(_enormous_nrrd, "voxels", bounded=True),
    "enormous header: MetaImage 100000^3": Case(_enormous_metaimage, "voxels", bounded=True),
    "enormous header: DICOM 65535^2 x 100000": Case(_enormous_dicom, "voxels", bounded=True),
    "128 MiB declared, 100 B of gzip (.nii.gz)": Case(_lying_nifti_gz, "truncated", bounded=True),
    "128 MiB declared, 9 B of zlib (.mha)": Case(_lying_metaimage_zlib, "truncated", bounded=True),
    "gzip bomb behind a small NRRD header": Case(_gzip_bomb_nrrd, "bomb", bounded=True),
    "non-UTF-8 folder name": Case(_non_utf8_folder, "not valid UTF-8", folder="bad\\xff\\xfe"),
    "scan.json not UTF-8": Case(
        lambda p: _with_scan_json(p, b'{"scan_id": "bad\xff", "label": null}'),
        "not valid JSON",
        scan_id=None,
    ),
    "scan.json lone surrogate escape": Case(
        lambda p: _with_scan_json(p, {**_DOC, "subject_id": "P\udcff"}), "invalid Unicode escape"
    ),
    "scan_id of 200 characters": Case(
        lambda p: _with_scan_json(p, {**_DOC, "scan_id": "S" * 200}), "not allowed", scan_id=None
    ),
    "scan.json: a JSON array": Case(lambda p: _with_scan_json(p, [_DOC]), "JSON object", None),
    "scan.json: scan_id a number": Case(
        lambda p: _with_scan_json(p, {**_DOC, "scan_id": 7}), "non-empty string", scan_id=None
    ),
    "scan.json: subject_id a list": Case(
        lambda p: _with_scan_json(p, {**_DOC, "subject_id": ["P01"]}), "non-empty string"
    ),
    "scan.json: label a number": Case(
        lambda p: _with_scan_json(p, {**_DOC, "label": 1}), "unknown label"
    ),
    "scan.json: side a boolean": Case(
        lambda p: _with_scan_json(p, {**_DOC, "side": True}), "non-empty string"
    ),
    "scan.json: acquired_at a number": Case(
        lambda p: _with_scan_json(p, {**_DOC, "acquired_at": 20260314}), "non-empty string"
    ),
    "scan.json: site an object": Case(
        lambda p: _with_scan_json(p, {**_DOC, "site": {"name": "A"}}), "non-empty string"
    ),
    "scan.json: spacing_mm a string": Case(
        lambda p: _with_scan_json(p, {**_DOC, "spacing_mm": "0.5,0.25,1"}), "spacing_mm"
    ),
    "scan.json: axis_order a list": Case(
        lambda p: _with_scan_json(p, {**_DOC, "axis_order": ["L", "D", "S"]}), "axis_order"
    ),
    "subject with two labels": Case(
        _subject_with_two_labels, "share one label", "good1_rescan", "good1_rescan"
    ),
    "duplicate scan_id in one arrival": Case(
        _duplicate_scan_id, "duplicate scan_id", "good1", "good1_copy"
    ),
    "negative SWE kPa in one voxel": Case(_negative_swe_voxel, "negative stiffness"),
    "upside-down layers (NRRD)": Case(_upside_down_nrrd_layers, "upside down"),
    "scan.json nested 100000 deep": Case(_scan_json_deep, "deeper than", scan_id=None),
    "scan.json of 2 MiB": Case(_scan_json_huge, "larger than", scan_id=None),
    "scan.json is a directory": Case(_scan_json_directory, "not a regular file", scan_id=None),
    "bmode.nii is a directory": Case(_bmode_directory, "not a regular file"),
    "spacing_mm 1e999 (infinite)": Case(_infinite_spacing, "finite"),
    "spacing_mm NaN": Case(_nan_spacing, "not valid JSON", scan_id=None),
    "MHD ElementDataFile = LIST (decoy beside)": Case(
        _detached("mhd", "LIST", "../../secret.raw\n"), "beside it"
    ),
    "MHD file-name pattern (decoy beside)": Case(
        _detached("mhd", "bmode%03d.raw 0 0 1"), "beside it"
    ),
    "NRRD data file: LIST (decoy beside)": Case(
        _detached("nhdr", "LIST"),
        "beside it",  # pynrrd cannot parse the names after it
    ),
    "NRRD data file pattern (decoy beside)": Case(
        _detached("nhdr", "bmode.%03d.raw 0 0 1"), "beside it"
    ),
    "NRRD negative byte skip": Case(_nrrd_negative_skip, "byte skip", bounded=True),
    "NRRD bzip2 bomb": Case(_nrrd_bzip2_bomb, "bomb", bounded=True),
    "raw file 4 MiB larger than its header": Case(_raw_surplus, "more bytes", bounded=True),
    "DICOM deflated transfer syntax": Case(_deflated_dicom, "deflated", bounded=True),
    "DICOM BurnedInAnnotation YES": Case(lambda p: _dicom(p, BurnedInAnnotation="YES"), "BurnedIn"),
    "DICOM BurnedInAnnotation absent": Case(
        lambda p: _dicom(p, BurnedInAnnotation=None), "BurnedIn"
    ),
}

MATRIX: dict[str, Case] = {**FOUNDATION, **NEW}


def write_good_scans(landing: Path, *, every_format: bool = False) -> list[str]:
    """Good scans beside the bad one; with ``every_format``, one per landing format and the
    names that are odd but valid. Returns their scan ids."""
    swe = Volume(np.full(SWE_SHAPE, 20.0, np.float32), SWE_SPACING)
    write_scan(landing, "good1", subject_id="G1", layers=layered_labels())
    write_scan(landing, "good2", subject_id="G2", label="control", swe=swe, ext="nii.gz")
    if not every_format:
        return ["good1", "good2"]
    for index, ext in enumerate(("nrrd", "mha", "dcm"), start=3):
        write_scan(landing, f"good{index}", subject_id=f"G{index}", ext=ext)
    write_scan(landing, "L" * 255, scan_id="good-long-folder", subject_id="G6")  # NAME_MAX
    write_scan(landing, "Müller_Ø_links", scan_id="good-unicode", subject_id="G7", label=None)
    stray = write_scan(landing, "good8", subject_id="G8")
    (Path(os.fsdecode(os.fsencode(stray) + b"/notes-\xff.txt"))).write_bytes(b"ignored")
    members = write_scan(landing, "good9", subject_id="G9", ext="nii.gz") / "bmode.nii.gz"
    raw = gzip.decompress(members.read_bytes())  # re-packed as two gzip members, like bgzip
    members.write_bytes(gzip.compress(raw[:200]) + gzip.compress(raw[200:]))
    return [
        *(f"good{i}" for i in range(1, 6)),
        "good-long-folder",
        "good-unicode",
        "good8",
        "good9",
    ]


def _scan_count(warehouse) -> int:
    return int(warehouse.query("SELECT count(*) AS n FROM scans")["n"].iloc[0])


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_bad_input_is_quarantined_naming_scan_and_cause(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = MATRIX[case]
    landing = tmp_path / "landing"
    landing.mkdir()
    good = write_good_scans(landing)
    spec.build(landing)

    logger = logging.getLogger("layer_platform.ingestion.intake")
    with caplog.at_level(logging.ERROR, logger=logger.name):
        warehouse, update = refresh(landing, tmp_path)

    assert sorted(update.accepted_ids) == good, "every good scan of the landing zone goes on"
    assert _scan_count(warehouse) == len(good)
    rows = warehouse.query("SELECT folder, scan_id, reason FROM quarantine").to_dict("records")
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["folder"], row["scan_id"]) == (spec.folder, spec.scan_id), row
    assert spec.cause and spec.cause.lower() in row["reason"].lower(), row["reason"]
    logged = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert any(
        f"folder {spec.folder} (scan {spec.scan_id})" in m and row["reason"] in m for m in logged
    ), logged


def test_bounded_cases_stay_under_the_rss_bound_in_a_child(tmp_path: Path) -> None:
    """Every ``bounded`` case, inspected in a sandboxed child whose peak RSS is measured.

    ``ru_maxrss`` sees what SimpleITK, nibabel and pydicom allocate in C (``tracemalloc`` saw
    only Python's share). A good 32 MiB volume inspected last shows the measure can fail.
    """
    landing = tmp_path / "landing"
    landing.mkdir()
    warmup = ["good1", "good2"]
    write_good_scans(landing)
    bounded = sorted(name for name, spec in MATRIX.items() if spec.bounded)
    cases = []
    for index, name in enumerate(bounded):
        scratch = tmp_path / "cases" / f"{index:02d}" / "landing"
        scratch.mkdir(parents=True)
        MATRIX[name].build(scratch)
        os.rename(scratch / "bad", landing / f"case{index:02d}")
        cases.append(f"case{index:02d}")
    big = np.random.default_rng(5).integers(10, 250, size=(256, 256, 512), dtype=np.uint8)
    write_scan(landing, "control", subject_id="C", bmode=big)

    outcomes = run_batch(landing, [*cases, "control"], warmup)

    for name, outcome in zip(bounded, outcomes, strict=False):
        assert outcome.quarantined == 1 and violations(outcome) == [], (name, outcome)
    control = outcomes[-1]
    assert control.accepted == 1
    assert control.rss_growth_mib > 24, f"the measure missed a 32 MiB read: {control}"


#: Cases refused only because of the good scans ``write_good_scans`` lands beside them.
NEEDS_GOOD_SCANS = frozenset({"subject with two labels", "duplicate scan_id in one arrival"})


def land_every_bad_case(
    landing: Path, scratch: Path, *, exclude: frozenset[str] = frozenset()
) -> dict[str, tuple[str | None, str]]:
    """Every ``MATRIX`` case (but ``exclude``) as a folder of ``landing``, named to sort after
    ordinary scan folders; returns folder (as stored) -> (scan_id named, cause fragment)."""
    expected: dict[str, tuple[str | None, str]] = {}
    for index, name in enumerate(sorted(set(MATRIX) - exclude)):
        spec = MATRIX[name]
        case = scratch / f"{index:02d}" / "landing"  # files outside a folder stay per case
        case.mkdir(parents=True)
        spec.build(case)
        (built,) = os.listdir(os.fsencode(case))
        moved = b"zz%02d_" % index + built  # after the good folders: they register first
        os.rename(os.fsencode(case) + b"/" + built, os.fsencode(landing) + b"/" + moved)
        expected[display_name(os.fsdecode(moved))] = (spec.scan_id, spec.cause)
    return expected


def assert_quarantined(quarantine: pd.DataFrame, expected: dict[str, tuple[str | None, str]]):
    """Each expected folder has exactly one quarantine row naming its scan and cause."""
    quarantine = quarantine.astype(object).where(quarantine.notna(), None)  # NULL, not NaN
    found = {r.folder: (r.scan_id, r.reason) for r in quarantine.itertuples(index=False)}
    assert len(found) == len(quarantine), "one row per refused folder"
    for folder, (scan_id, cause) in expected.items():
        assert folder in found, folder
        assert found[folder][0] == scan_id, (folder, found[folder])
        assert cause.lower() in found[folder][1].lower(), (folder, found[folder])


def test_every_bad_case_at_once_loses_no_good_scan(tmp_path: Path) -> None:
    """All cases in one landing zone beside good scans of every format and odd-but-valid names."""
    landing = tmp_path / "landing"
    landing.mkdir()
    good = write_good_scans(landing, every_format=True)
    expected = land_every_bad_case(landing, tmp_path / "cases")

    warehouse, update = refresh(landing, tmp_path)

    assert sorted(update.accepted_ids) == sorted(good)
    assert _scan_count(warehouse) == len(good)
    quarantine = warehouse.query("SELECT folder, scan_id, reason FROM quarantine")
    assert sorted(quarantine["folder"]) == sorted(expected)
    assert_quarantined(quarantine, expected)

    again = refresh_manifest(landing, warehouse)
    assert (again.accepted, again.quarantined) == ([], []), "nothing unchanged is read again"
    assert again.unchanged == len(good) + len(expected)
    assert _scan_count(warehouse) == len(good)
    assert len(warehouse.query("SELECT folder FROM quarantine")) == len(expected)
