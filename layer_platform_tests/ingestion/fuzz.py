"""Hypothesis-generated hostile landing folders, run through intake in a sandboxed child.

Strategies build one folder each: a hostile ``scan.json`` beside a good B-mode, or a good
``scan.json`` beside a hostile B-mode in any landing format (NIfTI-1/2 plain or gzipped, NRRD
attached and detached with every encoding, MHA/MHD, multi-frame DICOM), with header fields drawn
from valid, boundary and absurd values, detached data files named by path, pattern or ``LIST``
(beside right-sized decoys), and byte-level damage on top. Bait files sit outside the folders.
Every case must be exactly one accepted or quarantined record, without an exception, an open
outside its folder, or a peak-RSS rise over ``sandbox.RSS_BOUND_MIB``.

The suite runs a fixed, derandomized budget (``test_fuzz.py``). A longer run::

    PYTHONPATH=. python -m layer_platform_tests.ingestion.fuzz --cases 5000 [--seed 7]
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import functools
import gzip
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from layer_platform.ingestion.scan_json import CONTRACT_KEYS
from layer_platform.io import Volume, write_volume
from layer_platform.io.dicom import write_dicom
from layer_platform_tests.ingestion.sandbox import Outcome, run_batch, violations

#: A case: file name → bytes, written into one landing folder.
Files = dict[str, bytes]
SHAPE, SPACING = (8, 24, 4), (0.5, 0.25, 1.0)
PLANTED = "DOE^JANE-MRN4711"  # an identifier planted in headers and keys: must never echo
BAIT = "bait.raw"
GOOD = np.random.default_rng(0).integers(10, 250, size=SHAPE).astype(np.uint8)


def _doc(**extra: object) -> bytes:
    return json.dumps({"scan_id": "fz", "subject_id": "P1", "label": "MP", **extra}).encode()


@functools.cache
def _good_volume(ext: str) -> Files:
    """A good B-mode's files, built once: generation must not depend on the clock or UIDs."""
    with tempfile.TemporaryDirectory() as tmp:
        write_volume(Path(tmp) / f"bmode.{ext}", Volume(GOOD, SPACING))
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir()}


# ---- values: valid, boundary and absurd
small_ints = st.one_of(st.integers(-3, 16), st.sampled_from([0, 2**15 - 1, 2**31 - 1, 2**40]))
floats = st.one_of(
    st.floats(0.01, 5.0), st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 1e308, 1e-300])
)
data_files = st.sampled_from(
    [
        "bmode.raw",
        "LIST",
        "LOCAL",
        "bmode.%03d.raw 0 2 1",
        "bmode%d.raw",
        f"../{BAIT}",
        f"../../{BAIT}",
        "sub/bmode.raw",
        "bmode.raw ",
        "",
        ".",
        "..",
    ]
)


def _damage(draw: Callable[..., object], files: Files) -> Files:
    """Byte flips, a cut or trailing junk in one file, sometimes."""
    if not files or not draw(st.booleans()):
        return files
    name = draw(st.sampled_from(sorted(files)))
    data = bytearray(files[name])
    if data:
        for pos, value in draw(
            st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=6)
        ):
            data[pos] = value
        cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
        data = data[:cut] if cut is not None else data
    data += draw(st.binary(max_size=64))
    return {**files, name: bytes(data)}


#: 32 MiB of zeros, gzip- and bzip2-compressed (~32 kB and ~40 B): decompression bombs.
_BOMBS = (gzip.compress(bytes(32 << 20), 9, mtime=0), bz2.compress(bytes(32 << 20), 9))


def _payload(draw: st.DrawFn, declared: int) -> bytes:
    """Raw samples, random bytes, or a compressed stream (sometimes a bomb)."""
    exact = GOOD.tobytes()[:declared].ljust(min(max(declared, 0), 1 << 16), b"\x07")
    kind = draw(st.sampled_from(["exact", "binary", "gzip", "bzip2", "gzip bomb", "bz2 bomb"]))
    if kind == "binary":
        return draw(st.binary(max_size=2048))
    if kind == "gzip":
        return gzip.compress(exact, mtime=0)
    if kind == "bzip2":
        return bz2.compress(exact)
    if kind == "gzip bomb":
        return _BOMBS[0]
    if kind == "bz2 bomb":
        return _BOMBS[1]
    return exact


def _decoys(data_file: str, size: int) -> Files:
    """Right-sized files named as the header names them, where the name is a plain one."""
    name = data_file.strip()
    if "/" in name or name in ("", ".", ".."):
        return {}
    return {name: GOOD.tobytes()[:size].ljust(size, b"\x05")[: 1 << 16]}


@st.composite
def scan_json_cases(draw: st.DrawFn) -> Files:
    """Hostile documents beside a good NIfTI B-mode."""
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), floats, st.text(max_size=20))
    values = st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=12,
    )
    doc: dict[str, object] = {"scan_id": "fz", "subject_id": "P1", "label": "MP"}
    for key in draw(
        st.lists(
            st.sampled_from(sorted(CONTRACT_KEYS)),
            max_size=4,
        )
    ):
        doc[key] = draw(values)
    doc.update(
        draw(
            st.dictionaries(
                st.sampled_from(["Patient-Name", "hospital_number", "info", "note", PLANTED]),
                st.just(PLANTED) | values,
                max_size=3,
            )
        )
    )
    raw = json.dumps(doc, allow_nan=True).encode()
    raw = draw(
        st.sampled_from(
            [
                raw,
                b"[" * 50_000 + b"]" * 50_000,
                b'{"scan_id": "fz", "deep": ' + b"[" * 30 + b"]" * 30 + b"}",
                raw[:-1] + b', "pad": "' + b"x" * (1 << 20) + b'"}',
                raw.replace(b"}", b', "n": ' + b"9" * 6000 + b"}"),
                raw.replace(b"}", b', "spacing_mm": [1e999, 1, NaN]}'),
                raw[: len(raw) // 2],
                b"\xff\xfe" + raw,
            ]
        )
    )
    return {"scan.json": raw, **_good_volume("nii")}


@st.composite
def nifti_cases(draw: st.DrawFn) -> Files:
    header = (nib.Nifti2Header if draw(st.booleans()) else nib.Nifti1Header)()
    header.set_data_shape(SHAPE)
    header.set_data_dtype(np.uint8)
    header.set_zooms(SPACING)
    fields = {
        "dim": st.lists(small_ints, min_size=8, max_size=8),
        "datatype": st.sampled_from([0, 2, 4, 16, 64, 128, 511, 2304, 1536, 9999]),
        "bitpix": small_ints,
        "vox_offset": st.sampled_from([0.0, 352.0, 544.0, -5.0, 1e12, float("nan")]),
        "pixdim": st.lists(floats, min_size=8, max_size=8),
        "scl_slope": floats,
        "descrip": st.just(PLANTED.encode()),
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=3)):
        with contextlib.suppress(ValueError, OverflowError, TypeError):
            header[name] = draw(fields[name])
    body = header.binaryblock + b"\x00" * 4
    declared = int(np.prod(np.clip(header["dim"][1:4], 0, 64))) * 1
    body += _payload(draw, declared) if draw(st.booleans()) else GOOD.tobytes(order="F")
    if draw(st.booleans()):
        return {"scan.json": _doc(), "bmode.nii.gz": gzip.compress(body, mtime=0)}
    return {"scan.json": _doc(), "bmode.nii": body}


@st.composite
def nrrd_cases(draw: st.DrawFn) -> Files:
    detached = draw(st.booleans())
    fields = {
        "type": st.sampled_from(["uint8", "int16", "float", "double", "block", "junk"]),
        "dimension": st.sampled_from(["3", "2", "4", "1", "0", "-1", "x"]),
        "sizes": st.lists(small_ints, min_size=1, max_size=4).map(lambda v: " ".join(map(str, v))),
        "encoding": st.sampled_from(["raw", "gzip", "bzip2", "ascii", "hex", "junk"]),
        "byte skip": st.sampled_from(["0", "-1", "-2", "-4096", "10", str(2**40)]),
        "line skip": st.sampled_from(["0", "1", "-1", "9"]),
        "spacings": st.lists(floats, min_size=3, max_size=3).map(lambda v: " ".join(map(str, v))),
        "kinds": st.sampled_from(
            [
                "domain domain domain",
                "list domain domain",
                "RGB-color domain domain",
                "vector domain domain",
            ]
        ),
        "content": st.just(PLANTED),
        "endian": st.sampled_from(["little", "big", "middle"]),
    }
    header = {
        "type": "uint8",
        "dimension": "3",
        "sizes": "8 24 4",
        "encoding": "raw",
        "spacings": "0.5 0.25 1",
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=4)):
        header[name] = draw(fields[name])
    data = _payload(draw, 768)
    files: Files = {"scan.json": _doc()}
    listing = b""
    if detached or draw(st.booleans()):
        data_file = draw(data_files)
        header["data file"] = data_file
        files.update(_decoys(data_file, 768))
        if data_file.strip() == "LIST":
            listing = f"../{BAIT}\n../../{BAIT}\n".encode()
        if data_file == "bmode.raw":
            files["bmode.raw"] = data
    text = "NRRD0004\n" + "".join(f"{k}: {v}\n" for k, v in header.items())
    if detached:
        files["bmode.nhdr"] = text.encode() + listing
    else:
        files["bmode.nrrd"] = text.encode() + listing + b"\n" + data
    return files


@st.composite
def metaimage_cases(draw: st.DrawFn) -> Files:
    detached = draw(st.booleans())
    fields = {
        "NDims": st.sampled_from(["3", "2", "4", "0", "-1", "x"]),
        "DimSize": st.lists(small_ints, min_size=1, max_size=4).map(
            lambda v: " ".join(map(str, v))
        ),
        "ElementType": st.sampled_from(["MET_UCHAR", "MET_SHORT", "MET_DOUBLE", "MET_JUNK", ""]),
        "ElementSpacing": st.lists(floats, min_size=3, max_size=3).map(
            lambda v: " ".join(map(str, v))
        ),
        "CompressedData": st.sampled_from(["True", "False", "junk"]),
        "CompressedDataSize": st.sampled_from(["0", "9", "-1", str(2**40)]),
        "HeaderSize": st.sampled_from(["0", "-1", "100", str(2**40)]),
        "ElementNumberOfChannels": st.sampled_from(["1", "3", "0", "97", "-1"]),
        "BinaryDataByteOrderMSB": st.sampled_from(["True", "False"]),
        "PatientName": st.just(PLANTED),
    }
    header = {
        "ObjectType": "Image",
        "NDims": "3",
        "DimSize": "8 24 4",
        "ElementType": "MET_UCHAR",
        "ElementSpacing": "0.5 0.25 1",
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=4)):
        header[name] = draw(fields[name])
    data = _payload(draw, 768)
    data_file = (
        draw(data_files)
        if detached
        else draw(st.sampled_from(["LOCAL", "LOCAL", "LIST", f"../{BAIT}"]))
    )
    files: Files = {"scan.json": _doc(), **_decoys(data_file, 768)}
    text = "".join(f"{k} = {v}\n" for k, v in header.items()) + f"ElementDataFile = {data_file}\n"
    if data_file.strip() == "LIST":
        text += f"../{BAIT}\n../../{BAIT}\n"
    if data_file == "bmode.raw":
        files["bmode.raw"] = data
    if detached:
        files["bmode.mhd"] = text.encode()
    else:
        files["bmode.mha"] = text.encode() + (data if data_file == "LOCAL" else b"")
    return files


@functools.cache
def _good_dicom() -> bytes:
    buffer = io.BytesIO()
    uids = {k: "1.2.3.4" for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")}
    extra = {"PatientName": PLANTED, "PatientID": PLANTED, **uids}
    write_dicom(buffer, GOOD, SPACING, extra=extra)  # type: ignore[arg-type]
    return buffer.getvalue()


@st.composite
def dicom_cases(draw: st.DrawFn) -> Files:
    buffer = io.BytesIO(_good_dicom())
    ds = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    changes = {
        "Rows": small_ints.filter(lambda v: 0 <= v < 2**16),
        "Columns": small_ints.filter(lambda v: 0 <= v < 2**16),
        "NumberOfFrames": small_ints.filter(lambda v: 0 <= v < 2**31),
        "BitsAllocated": st.sampled_from([1, 8, 12, 16, 32, 64]),
        "SamplesPerPixel": st.sampled_from([0, 1, 3, 4]),
        "PhotometricInterpretation": st.sampled_from(
            ["MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "JUNK"]
        ),
        "PixelRepresentation": st.sampled_from([0, 1]),
        "BurnedInAnnotation": st.sampled_from(["NO", "YES", "MAYBE"]),
        "RescaleSlope": floats.map(lambda v: f"{v:.6g}"[:16]),
        "PixelSpacing": st.lists(floats.map(lambda v: f"{v:.6g}"[:16]), min_size=2, max_size=2),
    }
    for name in draw(st.lists(st.sampled_from(sorted(changes)), unique=True, max_size=3)):
        setattr(ds, name, draw(changes[name]))
    if draw(st.booleans()):
        region = Dataset()
        box = draw(st.lists(st.integers(-2, 30), min_size=4, max_size=4))
        region.RegionLocationMinX0, region.RegionLocationMinY0 = box[0] % 2**16, box[1] % 2**16
        region.RegionLocationMaxX1, region.RegionLocationMaxY1 = box[2] % 2**16, box[3] % 2**16
        ds.SequenceOfUltrasoundRegions = [region]
    syntax = draw(
        st.sampled_from(
            [
                ExplicitVRLittleEndian,
                ImplicitVRLittleEndian,
                ExplicitVRBigEndian,
                DeflatedExplicitVRLittleEndian,
                JPEGBaseline8Bit,
            ]
        )
    )
    ds.file_meta.TransferSyntaxUID = syntax
    cut = draw(st.sampled_from([None, 1, 100, -1]))
    if cut is not None:
        ds.PixelData = ds.PixelData[:cut] if cut > 0 else ds.PixelData + b"\x00" * 200_000
    out = io.BytesIO()
    try:
        ds.save_as(
            out,
            implicit_vr=syntax == ImplicitVRLittleEndian,
            little_endian=syntax != ExplicitVRBigEndian,
        )
    except Exception:
        out = buffer
    return {"scan.json": _doc(), "bmode.dcm": out.getvalue()}


FORMATS: dict[str, st.SearchStrategy[Files]] = {
    "scan.json": scan_json_cases(),
    "nifti": nifti_cases(),
    "nrrd": nrrd_cases(),
    "metaimage": metaimage_cases(),
    "dicom": dicom_cases(),
}


def generate(n_per_format: int, seed_value: int = 0) -> list[tuple[str, Files]]:
    """``n_per_format`` Hypothesis-drawn cases of each format, reproducible for one seed."""
    cases: list[tuple[str, Files]] = []
    for kind, strategy in FORMATS.items():

        @seed(seed_value)
        @settings(
            max_examples=n_per_format,
            database=None,
            deadline=None,
            derandomize=seed_value == 0,
            suppress_health_check=list(HealthCheck),
        )
        @given(files=strategy, data=st.data())
        def collect(files: Files, data: st.DataObject, kind: str) -> None:
            cases.append((kind, _damage(data.draw, files)))

        collect(kind=kind)
    return cases


def write_cases(root: Path, cases: list[tuple[str, Files]]) -> tuple[Path, list[str], list[str]]:
    """The landing zone (cases, good warm-up scans, bait outside); (landing, cases, warm-up)."""
    landing = root / "landing"
    landing.mkdir(parents=True)
    for bait in (landing / BAIT, root / BAIT):
        bait.write_bytes(GOOD.tobytes())
        os.utime(bait, (time.time() - 86400, time.time()))  # relatime: a read updates atime
    names = []
    for index, (kind, files) in enumerate(cases):
        name = f"{kind}-{index:05d}"
        (landing / name).mkdir()
        for file, data in files.items():
            (landing / name / file).write_bytes(data)
        names.append(name)
    warmup = []
    for ext in ("nii", "nii.gz", "nrrd", "nhdr", "mha", "mhd", "dcm"):
        name = f"warmup-{ext.replace('.', '')}"
        (landing / name).mkdir()
        write_volume(landing / name / f"bmode.{ext}", Volume(GOOD, SPACING))
        (landing / name / "scan.json").write_bytes(_doc())
        warmup.append(name)
    return landing, names, warmup


def bait_read(root: Path) -> bool:
    """Whether anything read a bait file (its atime moved past its mtime)."""
    return any(
        (p.stat().st_atime >= p.stat().st_mtime) for p in (root / "landing" / BAIT, root / BAIT)
    )


def run(
    n_per_format: int, root: Path, seed_value: int = 0
) -> tuple[list[Outcome], dict[str, list[str]], bool]:
    """Generate, land and inspect; (outcomes, violations by folder, whether bait was read)."""
    cases = generate(n_per_format, seed_value)
    landing, names, warmup = write_cases(root, cases)
    outcomes = run_batch(landing, names, warmup, timeout=max(600, 2 * len(names)))
    found = {o.folder: v for o in outcomes if (v := violations(o) + _echoes(o))}
    return outcomes, found, bait_read(root)


def _echoes(outcome: Outcome) -> list[str]:
    return [f"reason echoes a planted value: {outcome.reason}"] if "DOE" in outcome.reason else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases in all (split over formats)")
    parser.add_argument("--seed", type=int, default=0, help="0: derandomized, as in the suite")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="layer-fuzz-") as tmp:
        outcomes, found, bait = run(max(args.cases // len(FORMATS), 1), Path(tmp), args.seed)
    refused = sum(o.quarantined for o in outcomes)
    peak = max((o.rss_growth_mib for o in outcomes), default=0.0)
    print(
        f"{len(outcomes)} cases in {time.monotonic() - started:.0f} s: {refused} quarantined,"
        f" {len(outcomes) - refused} accepted, peak RSS growth {peak:.1f} MiB,"
        f" bait read: {bait}, findings: {len(found)}"
    )
    for folder, problems in sorted(found.items()):
        print(f"  {folder}: {'; '.join(problems)}")
    return 1 if found or bait else 0


if __name__ == "__main__":
    raise SystemExit(main())
