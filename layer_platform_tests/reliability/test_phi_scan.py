"""No patient identifier planted in a DICOM header survives anywhere the platform writes.

The ``from_scratch`` cohort holds ``PHI-1``, a DICOM B-mode whose header carries a patient name,
ID and birth date (``defs/test_materialization.PHI``); the scan is accepted and goes through
every stage, classifier training and saliency included. Afterwards every file of the four
stores is searched, decoded the way a reader would see it, not only as raw bytes:

- the DuckDB warehouse: every row of every table, plus the raw file and its log (free blocks
  can keep deleted values);
- the MLflow store: every row of its sqlite database, and every artifact (models are zip
  archives: each member is searched);
- the Dagster instance: the run, event-log and schedule sqlite databases row by row (event
  bodies are JSON text), and the compute logs;
- the artifacts: preprocessed volumes, segmentations, and saliency maps (``.nii.gz``
  decompressed, so a header field would show).

A scan of material with the identifiers planted in each of those encodings shows the search
can fail.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from layer_platform.io.dicom import write_dicom
from layer_platform.settings import LayerPaths
from layer_platform_tests.conftest import REPO_ROOT
from layer_platform_tests.defs.test_materialization import PHI
from layer_platform_tests.ingestion.test_intake import SPACING, bmode_array, write_scan
from layer_platform_tests.reliability.conftest import FromScratch, child_env

#: The planted values, the name's components, and the birth date as ISO text.
NEEDLES = [
    re.escape(value.encode().lower())
    for value in {*PHI.values(), *PHI["PatientName"].split("^"), "1951-07-04"}
    if not value.isdigit() and value != "PLANTED"  # "planted" is also a column name
]
#: A date of digits only counts standing alone (not inside a float, a hash or an id).
NEEDLES += [rb"(?<![0-9a-z.])" + v.encode() + rb"(?![0-9a-z])" for v in PHI.values() if v.isdigit()]
PATTERN = re.compile(b"|".join(NEEDLES))
SQLITE = b"SQLite format 3\x00"
GZIP = b"\x1f\x8b"
ZIP = b"PK\x03\x04"


def _duckdb_rows(path: Path) -> bytes:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
        return b"\n".join(
            con.execute(f'SELECT * FROM "{name}"').fetch_df().to_csv().encode()
            for (name,) in tables
        )


def _sqlite_rows(path: Path) -> Iterator[bytes]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (name,) in tables:
            for row in con.execute(f'SELECT * FROM "{name}"'):
                for value in row:
                    yield value if isinstance(value, bytes) else str(value).encode()
    finally:
        con.close()


def decoded(path: Path) -> Iterator[tuple[str, bytes]]:
    """(where, content) of a file as stored and as a reader decodes it."""
    data = path.read_bytes()
    yield str(path), data
    if data.startswith(GZIP):
        yield f"{path} (gunzipped)", gzip.decompress(data)
    elif data.startswith(ZIP):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield f"{path}!{member}", archive.read(member)
    elif data.startswith(SQLITE):
        yield f"{path} (rows)", b"\n".join(_sqlite_rows(path))
    elif path.suffix == ".duckdb":
        yield f"{path} (rows)", _duckdb_rows(path)


def phi_hits(root: Path) -> list[str]:
    """Every place under ``root`` (the landing zone aside) that holds a planted identifier."""
    hits = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "landing" in path.relative_to(root).parts:
            continue
        for where, content in decoded(path):
            found = {m.group().decode() for m in PATTERN.finditer(content.lower())}
            hits += [f"{where}: {sorted(found)}"] if found else []
    return hits


def stores(paths: LayerPaths) -> dict[str, Path]:
    return {
        "warehouse": paths.warehouse.parent,
        "mlflow": paths.mlflow_dir,
        "dagster": paths.dagster_home,
        "artifacts": paths.artifacts,
    }


def embedded_blob(text: str) -> bytes:
    """A blob with the text inside other bytes, as a serialized event body might hold it."""
    return b"\x00\x01" + text.encode() + b"\x02"


def test_the_search_finds_identifiers_in_every_encoding(tmp_path: Path) -> None:
    name, patient_id, birth = PHI["PatientName"], PHI["PatientID"], PHI["PatientBirthDate"]
    (tmp_path / "plain.json").write_text(f'{{"who": "{name}"}}')
    (tmp_path / "map.nii.gz").write_bytes(gzip.compress(f"descrip {patient_id}".encode()))
    with zipfile.ZipFile(tmp_path / "model.pth", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model/data.pkl", f"born {birth}\n")
    with sqlite3.connect(tmp_path / "runs.db") as con:
        con.execute("CREATE TABLE events (body BLOB)")
        con.execute("INSERT INTO events VALUES (?)", [embedded_blob(name)])
    with duckdb.connect(str(tmp_path / "layer.duckdb")) as con:
        con.execute("CREATE TABLE scans AS SELECT 'born 1951-07-04' AS note")
    (tmp_path / "innocent.txt").write_text("0.19510704 a19510704 planted_layer S0001-L")

    hits = phi_hits(tmp_path)
    for where in ("plain.json", "map.nii.gz (gunzipped)", "model.pth!model/data.pkl"):
        assert any(h.startswith(f"{tmp_path / where}:") for h in hits), where
    assert any("runs.db (rows)" in h for h in hits)
    assert any("layer.duckdb (rows)" in h for h in hits)
    assert not any("innocent.txt" in h for h in hits), "floats, ids and column names pass"


@pytest.mark.slow
def test_no_planted_identifier_in_any_store(from_scratch: FromScratch) -> None:
    for paths in from_scratch.homes:
        planted = paths.landing / "PHI-1" / "bmode.dcm"
        assert PATTERN.search(planted.read_bytes().lower()), "the DICOM does carry the PHI"
        # the scan reached every store: it is no proof if it was dropped early
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            modes = con.execute(
                "SELECT DISTINCT input_mode FROM layer_saliency WHERE scan_id = 'PHI-1'"
            ).fetchall()
        assert modes, "PHI-1 has saliency rows"
        logged = [p.read_text() for p in paths.mlflow_dir.rglob("scan_ids.txt")]
        assert any("PHI-1" in text for text in logged), "PHI-1 trained a logged model"
        assert any((paths.artifacts / "saliency" / "PHI-1").glob("*.nii.gz"))

        for store, root in stores(paths).items():
            assert root.is_dir(), store
            assert phi_hits(root) == [], f"planted identifiers found in the {store} store"


# ---- every channel at intake (#18): keys, nested keys, values, ids, DICOM tags, burned-in text
#: Planted identifiers, one per channel; none may appear outside the landing zone.
CHANNELS = {
    "key name": "QQKEY^PLANTED",
    "hyphenated PHI key": "QQHYPHEN^PLANTED",
    "unlisted key": "QQHOSPNO-5544332",
    "nested key": "QQNESTED^PLANTED",
    "scan_id (an MRN)": "MRN99887766",
    "subject_id (an MRN)": "MRN11223344",
    "DICOM PatientName": "QQDICOM^PLANTED",
    "DICOM unlisted text": "QQFREETEXT-PLANTED",
    "label value": "QQLABEL^PLANTED",
    "burned-in DICOM subject": "MRN55667788",
}
CHANNEL_PATTERN = re.compile(b"|".join(re.escape(v.lower().encode()) for v in CHANNELS.values()))


def _plant_every_channel(landing: Path) -> None:
    """Three accepted scans and two refused ones, carrying one identifier per channel."""
    write_scan(
        landing,
        "visit-a",
        scan_id=CHANNELS["scan_id (an MRN)"],
        subject_id=CHANNELS["subject_id (an MRN)"],
        meta={
            CHANNELS["key name"]: "x",
            "Patient-Name": CHANNELS["hyphenated PHI key"],
            "hospital_number": CHANNELS["unlisted key"],
            "info": {"name": CHANNELS["nested key"]},
            "site_note": "gel ok",  # allowlisted: kept
        },
    )
    dicom = landing / "visit-b"
    dicom.mkdir()
    extra = {
        "PatientName": CHANNELS["DICOM PatientName"],
        "DerivationDescription": CHANNELS["DICOM unlisted text"],
    }
    write_dicom(dicom / "bmode.dcm", bmode_array(), SPACING, extra=extra)
    (dicom / "scan.json").write_text(
        json.dumps({"scan_id": "visit-b", "subject_id": "S-B", "label": "control"})
    )
    burned = landing / "visit-c"
    burned.mkdir()
    write_dicom(
        dicom.parent / "visit-c" / "bmode.dcm",
        bmode_array(),
        SPACING,
        extra={"BurnedInAnnotation": "YES"},
    )
    (burned / "scan.json").write_text(
        json.dumps(
            {"scan_id": "visit-c", "subject_id": CHANNELS["burned-in DICOM subject"], "label": "MP"}
        )
    )
    write_scan(landing, "visit-d", label=CHANNELS["label value"], subject_id="S-D")


def test_no_identifier_from_any_intake_channel_leaves_the_landing_zone(tmp_path: Path) -> None:
    """``layer-platform run --until ingest`` with the pseudonymiser on, then ``export``.

    Searched: every file under ``LAYER_HOME`` outside the landing zone (warehouse, Dagster
    instance with its event log, logs), the Parquet export, and the CLI's own output.
    """
    home = tmp_path / "home"
    paths = LayerPaths.under(home).ensure()
    _plant_every_channel(paths.landing)
    planted = b"".join(p.read_bytes() for p in paths.landing.rglob("*") if p.is_file()).lower()
    assert len(set(CHANNEL_PATTERN.findall(planted))) == len(CHANNELS), "every plant took"
    env = child_env(
        LAYER_HOME=str(home),
        LAYER_PSEUDONYM_KEY="k" * 40,
        LAYER_SCAN_JSON_KEYS="site_note",
    )
    cli = [sys.executable, "-m", "layer_platform.cli"]
    run = subprocess.run(
        [*cli, "run", "--until", "ingest"],
        env=env,
        capture_output=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    export = subprocess.run(
        [*cli, "export", "--to", str(tmp_path / "export")],
        env=env,
        capture_output=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert run.returncode == 0, run.stdout.decode()[-2000:] + run.stderr.decode()[-2000:]
    assert export.returncode == 0, export.stderr.decode()[-2000:]

    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        scans = con.execute(
            "SELECT folder, scan_id, subject_id, metadata FROM scans ORDER BY folder"
        ).fetchall()
        refused = dict(con.execute("SELECT folder, reason FROM quarantine").fetchall())
    assert [row[0] for row in scans] == ["visit-a", "visit-b"], (scans, refused)
    assert scans[0][1].startswith("scan-") and scans[0][2].startswith("subj-"), scans[0]
    assert json.loads(scans[0][3]) == {"site_note": "gel ok"}
    assert "BurnedInAnnotation" in refused["visit-c"] and "unknown label" in refused["visit-d"]

    hits = []
    for root in (home, tmp_path / "export"):
        for path in sorted(root.rglob("*")):
            if path.is_file() and "landing" not in path.relative_to(root).parts:
                for where, content in decoded(path):
                    if found := {
                        m.group().decode() for m in CHANNEL_PATTERN.finditer(content.lower())
                    }:
                        hits.append(f"{where}: {sorted(found)}")
    for name, output in (
        ("run", run.stdout + run.stderr),
        ("export", export.stdout + export.stderr),
    ):
        if found := {m.group().decode() for m in CHANNEL_PATTERN.finditer(output.lower())}:
            hits.append(f"{name} output: {sorted(found)}")
    assert any(p.suffix == ".parquet" for p in (tmp_path / "export").iterdir())
    assert any(paths.dagster_home.rglob("*.db")), "the event log was searched"
    assert hits == [], hits
