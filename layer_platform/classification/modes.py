"""Input modes: which images a classifier sees, and how they become network channels.

SWE encoding (decided here, used by every SWE mode): ``log1p(kPa) / log1p(SWE_KPA_REFERENCE)`` on
valid voxels and exactly 0 on invalid ones. Stiffness spans two decades (fat ~5 kPa, stiff fascia
100+ kPa), so the log keeps soft layers visible and puts the channel on B-mode's ~[0, 1] scale.
Valid soft tissue is never 0 kPa, so 0 already marks "no measurement"; no separate mask channel is
added, which keeps ``bmode_swe`` at 2 channels and gives attribution one channel per modality.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from layer_platform.classification.data import Item, Scan
from layer_platform.errors import ScanError

if TYPE_CHECKING:
    from layer_platform.imaging.preprocess import PreprocessedScan

INPUT_MODES: tuple[str, ...] = ("bmode", "swe", "bmode_swe")
_N_CHANNELS: dict[str, int] = {"bmode": 1, "swe": 1, "bmode_swe": 2}

#: Top of the clinical SWE range (kPa); maps to 1.0 in the encoded channel.
SWE_KPA_REFERENCE = 300.0


def _check_mode(mode: str) -> str:
    if mode not in INPUT_MODES:
        raise ValueError(f"unknown input mode {mode!r}; expected one of {INPUT_MODES}")
    return mode


def n_channels(mode: str) -> int:
    """Network input channels for ``mode``."""
    return _N_CHANNELS[_check_mode(mode)]


def uses_swe(mode: str) -> bool:
    """Whether ``mode`` needs SWE (so scans without it are excluded)."""
    return _check_mode(mode) != "bmode"


def encode_swe(swe: np.ndarray, swe_valid: np.ndarray) -> np.ndarray:
    """Log-scaled stiffness on valid voxels, 0 elsewhere (see module docstring)."""
    if swe.shape != swe_valid.shape or swe_valid.dtype != np.bool_:
        raise ScanError(
            f"SWE validity mask must be boolean with the SWE shape {swe.shape}; "
            f"got {swe_valid.dtype} {swe_valid.shape}"
        )
    measured = swe[swe_valid]
    if not np.all(np.isfinite(measured)) or np.any(measured < 0):
        raise ScanError("valid SWE voxels must be finite, non-negative kPa")
    safe = np.where(swe_valid, swe, 0.0)
    return (np.log1p(safe) / np.log1p(SWE_KPA_REFERENCE)).astype(np.float32)


def build_input(
    mode: str,
    bmode: np.ndarray,
    swe: np.ndarray | None = None,
    swe_valid: np.ndarray | None = None,
) -> np.ndarray:
    """Stack the channels ``mode`` needs into float32 ``(C, lateral, depth, sweep)``."""
    _check_mode(mode)
    if bmode.ndim != 3 or not np.all(np.isfinite(bmode)):
        raise ScanError(f"B-mode must be a finite 3D volume; got shape {bmode.shape}")
    channels: list[np.ndarray] = []
    if mode != "swe":
        channels.append(bmode.astype(np.float32))
    if uses_swe(mode):
        if swe is None or swe_valid is None:
            raise ScanError(f"input mode {mode!r} needs SWE and its validity mask")
        if swe.shape != bmode.shape:
            raise ScanError(f"SWE shape {swe.shape} differs from the B-mode grid {bmode.shape}")
        channels.append(encode_swe(swe, swe_valid))
    return np.stack(channels)


def channel_modalities(mode: str) -> tuple[str, ...]:
    """The modality of each network channel of ``mode``, in ``build_input`` order."""
    return {"bmode": ("bmode",), "swe": ("swe",), "bmode_swe": ("bmode", "swe")}[_check_mode(mode)]


def no_signal_channels(mode: str) -> tuple[int, ...]:
    """Encoded SWE is exactly 0 where nothing was measured: its channel is the last one."""
    return (n_channels(mode) - 1,) if uses_swe(mode) else ()


def mode_input(mode: str, stored: PreprocessedScan) -> np.ndarray | None:
    """The classifier input of ``mode``, or None for an SWE mode on a scan without valid SWE."""
    if uses_swe(mode) and (stored.swe_valid is None or not stored.swe_valid.any()):
        return None
    return build_input(mode, stored.bmode, stored.swe, stored.swe_valid)


def eligible_scans(scans: Iterable[Scan], mode: str) -> tuple[list[Scan], int]:
    """Scans usable in ``mode`` and how many were excluded (no valid SWE in an SWE mode)."""
    scans = list(scans)
    if not uses_swe(mode):
        return scans, 0
    kept = [scan for scan in scans if scan.has_swe]
    return kept, len(scans) - len(kept)


def make_items(scans: Iterable[Scan], mode: str) -> list[Item]:
    """Network inputs for eligible scans; data problems name the scan (for quarantine)."""
    items = []
    for scan in scans:
        try:
            x = build_input(mode, scan.bmode, scan.swe, scan.swe_valid)
        except ScanError as error:
            raise error.located(scan_id=scan.scan_id) from error
        items.append(Item(scan.scan_id, scan.subject_id, scan.label, x))
    return items
