"""``scan.json``: size- and depth-bounded parsing, the contract's keys, everything else dropped.

Extra keys are kept only when the site allowlisted them (:class:`IntakePolicy`); the rest are
dropped and counted, never stored. Reasons name keys and rules, never the document's values:
a reason is stored in the warehouse and logged, and a value may be a patient's name.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from layer_platform.errors import ScanError
from layer_platform.ingestion.policy import IntakePolicy
from layer_platform.labels import PAIN_LABELS

SIDES: tuple[str, ...] = ("left", "right")
AXIS_LETTERS = frozenset("LDS")

#: A scan_id becomes a Dagster partition key, a file name and a SQL value: keep it plain.
SCAN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

#: Largest scan.json accepted; refused before parsing (the contract's document is ~200 bytes).
MAX_SCAN_JSON_BYTES = 1 << 20
#: Deepest nesting of arrays and objects accepted; refused before parsing, so a deep document
#: can never reach the parser's recursion limit.
MAX_SCAN_JSON_DEPTH = 16

#: The landing contract's keys: always read, validated, and stored in their own columns.
CONTRACT_KEYS = frozenset(
    {
        "scan_id",
        "subject_id",
        "label",
        "side",
        "acquired_at",
        "site",
        "device",
        "axis_order",
        "spacing_mm",
    }
)

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


@dataclass(frozen=True)
class ScanMeta:
    """What ``scan.json`` says about a scan, validated; keys outside the allowlist dropped."""

    scan_id: str
    subject_id: str
    label: str | None
    side: str | None = None
    acquired_at: dt.date | None = None
    site: str | None = None
    device: str | None = None
    axis_order: str | None = None
    spacing_mm: tuple[float, float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    dropped_keys: int = 0


def is_utf8_text(text: str) -> bool:
    """False for a name with undecodable bytes, or a string with a lone surrogate escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _require_str(data: dict[str, Any], key: str, *, optional: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if optional:
            return None
        raise ScanError(f"scan.json is missing the required key {key!r}")
    if not isinstance(value, str) or not value.strip():
        raise ScanError(
            f"scan.json key {key!r} must be a non-empty string, got {type(value).__name__}"
        )
    if not is_utf8_text(value):  # JSON can spell a lone surrogate ("\udcff"): not storable text
        raise ScanError(f"scan.json key {key!r} holds an invalid Unicode escape")
    return value.strip()


def _parse_spacing(value: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, list)
        and len(value) == 3
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < float("inf")
            for v in value
        )
    )
    if not ok:
        raise ScanError("scan.json 'spacing_mm' must be three positive finite numbers in mm")
    return (float(value[0]), float(value[1]), float(value[2]))


def _parse_axis_order(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or sorted(value.upper()) != sorted(AXIS_LETTERS):
        raise ScanError(
            "scan.json 'axis_order' must name the canonical axis of file axes (i, j, k) with the"
            " letters L (lateral), D (depth), S (sweep), e.g. 'LSD'"
        )
    return value.upper()


def _nesting_depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting outside strings, counted without parsing."""
    depth = deepest = 0
    for char in _STRINGS.sub(b'""', raw):
        if char in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in b"]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _load(text: str | bytes) -> Any:
    """The JSON document, refused when too large, too deep, or holding NaN/Infinity."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(raw) > MAX_SCAN_JSON_BYTES:
        raise ScanError(f"scan.json is larger than {MAX_SCAN_JSON_BYTES} bytes")
    if _nesting_depth(raw) > MAX_SCAN_JSON_DEPTH:
        raise ScanError(f"scan.json nests arrays/objects deeper than {MAX_SCAN_JSON_DEPTH} levels")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:  # its message names a position, never the text
        raise ScanError(f"scan.json is not valid JSON (JSONDecodeError: {exc})") from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, huge integers, bad UTF-8
        raise ScanError(f"scan.json is not valid JSON ({type(exc).__name__})") from None


def parse_scan_json(text: str | bytes, policy: IntakePolicy | None = None) -> ScanMeta:
    """Validate a ``scan.json`` document against the landing contract.

    With a pseudonym key in ``policy``, the returned ids are pseudonyms; the exported ids are
    checked first and then forgotten.

    Raises:
        ScanError: too large or deep, malformed JSON, wrong types, unknown label or side,
            unsafe scan_id. The reason never quotes the document's values.
    """
    policy = policy or IntakePolicy()
    data = _load(text)
    if not isinstance(data, dict):
        raise ScanError(f"scan.json must hold a JSON object, got {type(data).__name__}")

    scan_id = _require_str(data, "scan_id", optional=False)
    assert scan_id is not None
    if not SCAN_ID_PATTERN.match(scan_id):
        raise ScanError(
            "scan.json 'scan_id' is not allowed: use letters, digits, '.', '_' or '-' (no path"
            " separators), at most 128 characters, starting with a letter or digit"
        )
    scan_id = policy.pseudonym("scan", scan_id)
    try:
        return _scan_meta(data, scan_id, policy)
    except ScanError as exc:  # the scan_id is safe and known: let the error name the scan
        raise exc.located(scan_id=scan_id) from None


def _scan_meta(data: dict[str, Any], scan_id: str, policy: IntakePolicy) -> ScanMeta:
    """The rest of ``scan.json`` once its ``scan_id`` is known to be safe."""
    subject_id = _require_str(data, "subject_id", optional=False)
    assert subject_id is not None

    if "label" not in data:
        raise ScanError("scan.json is missing the required key 'label' (MP, control or null)")
    label = data["label"]
    if label is not None and (not isinstance(label, str) or label not in PAIN_LABELS):
        raise ScanError("unknown label: scan.json 'label' must be 'MP', 'control' or null")

    side = _require_str(data, "side", optional=True)
    if side is not None and side not in SIDES:
        raise ScanError("unknown side: scan.json 'side' must be 'left' or 'right'")

    acquired_raw = _require_str(data, "acquired_at", optional=True)
    acquired_at = None
    if acquired_raw is not None:
        try:
            acquired_at = dt.date.fromisoformat(acquired_raw)
        except ValueError:
            raise ScanError("scan.json 'acquired_at' is not a YYYY-MM-DD date") from None

    extra = {k: v for k, v in data.items() if k in policy.extra_keys and k not in CONTRACT_KEYS}
    dropped = sum(1 for k in data if k not in CONTRACT_KEYS and k not in extra)
    return ScanMeta(
        scan_id=scan_id,
        subject_id=policy.pseudonym("subj", subject_id),
        label=label,
        side=side,
        acquired_at=policy.reduce_date(acquired_at),
        site=_require_str(data, "site", optional=True),
        device=_require_str(data, "device", optional=True),
        axis_order=_parse_axis_order(data.get("axis_order")),
        spacing_mm=_parse_spacing(data.get("spacing_mm")),
        extra=extra,
        dropped_keys=dropped,
    )
