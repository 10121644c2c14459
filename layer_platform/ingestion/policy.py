"""What a site decides about identifiers at intake: extra scan.json keys, pseudonyms, dates.

The defaults keep the least: the landing contract's keys only, acquisition dates to the month,
DICOM with burned-in text refused, ids as exported. A site sets the environment variables in
:data:`POLICY_VARIABLES` (read once by :meth:`IntakePolicy.from_env`); the pseudonym key is held
in memory only, never stored or logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from layer_platform.errors import ConfigurationError

#: Environment variables of the intake policy, and their meaning.
POLICY_VARIABLES: dict[str, str] = {
    "LAYER_SCAN_JSON_KEYS": "comma-separated scan.json keys kept beyond the contract's",
    "LAYER_PSEUDONYM_KEY": "secret (>= 32 characters): replaces scan_id and subject_id by HMACs",
    "LAYER_ACQUIRED_AT_PRECISION": "day, month (default), year or none",
    "LAYER_DICOM_BURNED_IN": "refuse (default) or mask: DICOM whose BurnedInAnnotation is not NO",
}

DatePrecision = Literal["day", "month", "year", "none"]
_PRECISIONS: tuple[DatePrecision, ...] = ("day", "month", "year", "none")
#: A key name an allowlist may hold: plain, so the setting itself cannot smuggle anything.
_KEY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MIN_KEY_LENGTH = 32
#: Hex digits of a pseudonym: 128 bits, so two ids never meet by chance in a cohort.
PSEUDONYM_HEX = 32


@dataclass(frozen=True)
class IntakePolicy:
    """How intake treats identifiers; the defaults keep the least.

    Args:
        extra_keys: scan.json keys kept (in ``scans.metadata``) beyond the contract's keys;
            every other key is dropped and only counted.
        pseudonym_key: when set, ``scan_id`` and ``subject_id`` become keyed HMAC-SHA256
            pseudonyms (``scan-<hex>``, ``subj-<hex>``): stable for one key, valid partition
            keys, and not reversible without the key. For sites whose ids are MRNs.
        date_precision: how much of ``acquired_at`` is kept (``month``: the first of the month).
        mask_burned_in: accept DICOM whose ``BurnedInAnnotation`` is not ``NO`` when everything
            outside its ultrasound regions could be zeroed; by default such a file is refused.
    """

    extra_keys: frozenset[str] = frozenset()
    pseudonym_key: bytes | None = field(default=None, repr=False)
    date_precision: DatePrecision = "month"
    mask_burned_in: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IntakePolicy:
        """The policy from :data:`POLICY_VARIABLES` (default: ``os.environ``).

        Raises:
            ConfigurationError: a malformed key list, a short pseudonym key, an unknown
                precision or burned-in mode (the message never repeats the key).
        """
        env = os.environ if env is None else env
        keys = frozenset(
            k.strip() for k in env.get("LAYER_SCAN_JSON_KEYS", "").split(",") if k.strip()
        )
        if not all(_KEY_NAME.match(k) for k in keys):
            raise ConfigurationError(
                "LAYER_SCAN_JSON_KEYS must list plain key names (letters, digits, _ . -)"
            )
        secret = env.get("LAYER_PSEUDONYM_KEY") or None
        if secret is not None and len(secret) < MIN_KEY_LENGTH:
            raise ConfigurationError(
                f"LAYER_PSEUDONYM_KEY must be at least {MIN_KEY_LENGTH} characters long"
            )
        precision = env.get("LAYER_ACQUIRED_AT_PRECISION", "month")
        if precision not in _PRECISIONS:
            raise ConfigurationError(f"LAYER_ACQUIRED_AT_PRECISION must be one of {_PRECISIONS}")
        burned_in = env.get("LAYER_DICOM_BURNED_IN", "refuse")
        if burned_in not in ("refuse", "mask"):
            raise ConfigurationError("LAYER_DICOM_BURNED_IN must be 'refuse' or 'mask'")
        return cls(
            extra_keys=keys,
            pseudonym_key=None if secret is None else secret.encode(),
            date_precision=precision,  # type: ignore[arg-type]
            mask_burned_in=burned_in == "mask",
        )

    def pseudonym(self, kind: Literal["scan", "subj"], value: str) -> str:
        """``value`` itself, or ``<kind>-<HMAC-SHA256 hex>`` when a pseudonym key is set."""
        if self.pseudonym_key is None:
            return value
        digest = hmac.new(self.pseudonym_key, f"{kind}\0{value}".encode(), hashlib.sha256)
        return f"{kind}-{digest.hexdigest()[:PSEUDONYM_HEX]}"

    def reduce_date(self, date: dt.date | None) -> dt.date | None:
        """The acquisition date to the configured precision (the analysis uses none of it)."""
        if date is None or self.date_precision == "day":
            return date
        if self.date_precision == "month":
            return date.replace(day=1)
        if self.date_precision == "year":
            return date.replace(month=1, day=1)
        return None
