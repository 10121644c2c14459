"""The scan.json contract: every malformed document is refused with a reason that says why."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from layer_platform.errors import ConfigurationError, ScanError
from layer_platform.ingestion.landing import parse_scan_json
from layer_platform.ingestion.policy import IntakePolicy
from layer_platform.ingestion.scan_json import SCAN_ID_PATTERN

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


def test_valid_document_parses_with_allowlisted_extras_kept() -> None:
    policy = IntakePolicy(extra_keys=frozenset({"operator_note"}), date_precision="day")
    meta = parse_scan_json(doc(operator_note="gel ok", other="x"), policy)
    assert meta.scan_id == "S001_L"
    assert meta.label == "MP"
    assert meta.acquired_at == dt.date(2026, 3, 14)
    assert (meta.extra, meta.dropped_keys) == ({"operator_note": "gel ok"}, 1)


def test_null_label_is_allowed_for_unlabelled_scans() -> None:
    assert parse_scan_json(doc(label=None)).label is None


@pytest.mark.parametrize(
    "planted",
    [
        {"patient_name": "DOE^JANE"},
        {"Patient-Name": "DOE^JANE"},
        {"hospital_number": "DOE^JANE"},
        {"info": {"name": "DOE^JANE"}},
        {"operator": "DOE^JANE", "dob": "1970-01-01"},
    ],
)
def test_every_key_outside_the_allowlist_is_dropped_and_only_counted(planted: dict) -> None:
    meta = parse_scan_json(doc(**planted))
    assert meta.extra == {} and meta.dropped_keys == len(planted)
    assert "DOE^JANE" not in repr(meta)


def test_dates_are_reduced_to_the_month_by_default() -> None:
    assert parse_scan_json(doc()).acquired_at == dt.date(2026, 3, 1)
    year = IntakePolicy(date_precision="year")
    assert parse_scan_json(doc(), year).acquired_at == dt.date(2026, 1, 1)
    assert parse_scan_json(doc(), IntakePolicy(date_precision="none")).acquired_at is None


def test_pseudonyms_are_keyed_stable_and_valid_scan_ids() -> None:
    key = IntakePolicy(pseudonym_key=b"k" * 32)
    meta = parse_scan_json(doc(scan_id="MRN1234567", subject_id="MRN1234567"), key)
    assert SCAN_ID_PATTERN.match(meta.scan_id) and SCAN_ID_PATTERN.match(meta.subject_id)
    assert meta.scan_id.startswith("scan-") and meta.subject_id.startswith("subj-")
    assert "1234567" not in meta.scan_id + meta.subject_id
    assert parse_scan_json(doc(scan_id="MRN1234567"), key).scan_id == meta.scan_id
    other = IntakePolicy(pseudonym_key=b"j" * 32)
    assert parse_scan_json(doc(scan_id="MRN1234567"), other).scan_id != meta.scan_id


def test_policy_from_the_environment() -> None:
    env = {
        "LAYER_SCAN_JSON_KEYS": "operator_note, probe",
        "LAYER_PSEUDONYM_KEY": "s" * 40,
        "LAYER_ACQUIRED_AT_PRECISION": "year",
        "LAYER_DICOM_BURNED_IN": "mask",
    }
    policy = IntakePolicy.from_env(env)
    assert policy.extra_keys == {"operator_note", "probe"}
    assert (policy.date_precision, policy.mask_burned_in) == ("year", True)
    assert "s" * 40 not in repr(policy), "the key is never shown"
    assert IntakePolicy.from_env({}) == IntakePolicy()
    for bad in ({"LAYER_PSEUDONYM_KEY": "short"}, {"LAYER_SCAN_JSON_KEYS": "a b"}):
        with pytest.raises(ConfigurationError):
            IntakePolicy.from_env(bad)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "deeper than"),
        (json.dumps({**VALID, "x": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}).encode(), "deeper"),
        (b'{"pad": "' + b"x" * (1 << 20) + b'"}', "larger than"),
        (doc().replace("}", ', "spacing_mm": [1e999, 1, 1]}').encode(), "finite"),
        (doc().replace("}", ', "spacing_mm": [NaN, 1, 1]}').encode(), "not valid JSON"),
        (b'{"scan_id": "a", "n": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_hostile_documents_are_refused_without_parsing_them_whole(
    raw: bytes, fragment: str
) -> None:
    with pytest.raises(ScanError, match=fragment):
        parse_scan_json(raw)


@pytest.mark.parametrize(
    "changes",
    [
        {"label": "DOE^JANE"},
        {"side": "DOE^JANE"},
        {"acquired_at": "DOE^JANE"},
        {"scan_id": "DOE^JANE/x"},
        {"axis_order": "DOE^JANE"},
        {"spacing_mm": ["DOE^JANE", 1, 1]},
        {"subject_id": "DOE^JANE\udcff"},
    ],
)
def test_reasons_name_keys_never_values(changes: dict) -> None:
    with pytest.raises(ScanError) as error:
        parse_scan_json(doc(**changes))  # json.dumps writes the lone surrogate as an escape
    assert "DOE" not in str(error.value), str(error.value)


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
