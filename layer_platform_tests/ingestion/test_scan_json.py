"""The scan.json contract: every malformed document is refused with a reason that says why."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from layer_platform.errors import ScanError
from layer_platform.ingestion.landing import parse_scan_json

VALID = {
    "scan_id": "S001_L",
    "subject_id": "S001",
    "label": "MP",
    "side": "left",
    "acquired_at": "2026-03-14",
    "site": "siteA",
    "device": "probeX",
}


def doc(**changes: object) -> str:
    data = {**VALID, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...})


def test_valid_document_parses_with_extras_kept() -> None:
    meta = parse_scan_json(doc(operator_note="gel ok"))
    assert meta.scan_id == "S001_L"
    assert meta.label == "MP"
    assert meta.acquired_at == dt.date(2026, 3, 14)
    assert meta.extra == {"operator_note": "gel ok"}


def test_null_label_is_allowed_for_unlabelled_scans() -> None:
    assert parse_scan_json(doc(label=None)).label is None


def test_phi_looking_keys_are_dropped_not_kept() -> None:
    meta = parse_scan_json(doc(patient_name="DOE^JANE", dob="1970-01-01"))
    assert "patient_name" not in meta.extra and "dob" not in meta.extra
    assert meta.dropped_phi_keys == ("dob", "patient_name")
    assert "DOE^JANE" not in repr(meta)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (doc(scan_id=...), "missing the required key 'scan_id'"),
        (doc(subject_id=...), "missing the required key 'subject_id'"),
        (doc(label=...), "'label'"),
        (doc(label="pain"), "unknown label"),
        (doc(side="middle"), "unknown side"),
        (doc(scan_id=42), "must be a non-empty string"),
        (doc(scan_id="../../etc"), "not allowed"),
        (doc(scan_id="a/b"), "not allowed"),
        (doc(acquired_at="14/03/2026"), "YYYY-MM-DD"),
        (doc(spacing_mm=[0.5, -1, 1]), "spacing_mm"),
        (doc(axis_order="XYZ"), "axis_order"),
        (b"\xff\xfe\x00bad", "not valid JSON"),
    ],
)
def test_malformed_documents_are_refused(text: str | bytes, fragment: str) -> None:
    with pytest.raises(ScanError, match=fragment.replace("(", r"\(")):
        parse_scan_json(text)
