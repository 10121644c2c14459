"""The per-scan driver of the batched stages: run each scan, commit it, quarantine failures.

Preprocessing, segmentation and saliency all take a batch of scans in one Dagster run (one
run per scan costs seconds of overhead). A batch must still behave like many small runs:

- each scan's results are published (artifacts swapped in whole) and its warehouse rows
  committed in one transaction as soon as the scan is done, so an interruption (Ctrl-C,
  SIGTERM, ``kill -9``, a cancelled run) keeps every finished scan and a re-run does the rest;
  a scan whose work has costly independent parts (saliency: one per input mode) commits each
  part as it finishes, so an interruption loses at most the part in flight;
- a scan that raises or fails a per-scan check is quarantined with its stage and the reason
  (the check's name or the exception's class, never input values); the batch goes on;
- progress goes to tqdm and to the caller's log; a stop request is honoured between scans.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from layer_platform.errors import ScanError
from layer_platform.io.writers import process_owner, remove_dead_staging, staging_prefix
from layer_platform.locations import Location, is_remote
from layer_platform.timestamps import utc_now
from layer_platform.warehouse.store import Replacement, Warehouse

#: Progress is logged every this many scans (and after the last).
LOG_EVERY = 10


class ScanCheckFailed(Exception):
    """A per-scan check failed: the scan is quarantined under the check's name."""

    def __init__(self, check: str):
        self.check = check
        super().__init__(f"check {check} failed")


@dataclass
class ScanResult:
    """What one scan produced, ready to be made visible.

    ``publish`` swaps the scan's staged artifacts in (before its rows are committed: a crash
    between the two leaves new files without rows, so the scan is simply pending again);
    ``writes`` are its warehouse rows; ``metadata`` (plain values) and ``markdown`` (previews)
    go to the scan's partition; ``warnings`` name the non-blocking checks the scan failed;
    ``seconds`` times its parts (e.g. per input mode).
    """

    writes: list[Replacement]
    publish: Callable[[], None] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    markdown: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def combined(cls, parts: Sequence[ScanResult]) -> ScanResult:
        """One scan's result from the parts it committed one after another (``run_per_scan``)."""
        if len(parts) == 1:
            return parts[0]
        whole = cls(writes=[])
        for part in parts:
            whole.writes += part.writes
            whole.metadata |= part.metadata
            whole.markdown |= part.markdown
            whole.warnings = sorted({*whole.warnings, *part.warnings})
            whole.seconds |= part.seconds
        return whole


#: One scan's work: its result, or its parts in order, each committed as soon as it is yielded.
ScanWork = Callable[[str], "ScanResult | Iterable[ScanResult]"]


class Log(Protocol):
    def info(self, msg: str) -> Any: ...
    def error(self, msg: str) -> Any: ...


@dataclass
class BatchOutcome:
    """Scans committed, quarantined (scan → reason) and left undone by a stop request."""

    done: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)
    results: dict[str, ScanResult] = field(default_factory=dict)
    total_seconds: float = 0.0

    def failing(self, check: str) -> list[str]:
        """Scans quarantined by the per-scan ``check`` or warned by it, in batch order."""
        warned = [s for s, r in self.results.items() if check in r.warnings]
        return [s for s, why in self.quarantined.items() if why == f"check {check}"] + warned


#: ``renameat2`` flags: swap two paths in one step (Linux 3.15+; ext4, xfs, btrfs, tmpfs).
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def staging_folder(target: Path) -> Path:
    """A hidden folder beside ``target`` to write a scan's files into before ``swap_in``.

    Named like ``write_volume``'s staging (``.<name>.tmp.<pid>@<host>.<random>``), so the
    folders of writers killed mid-way are swept here the next time the scan is written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_staging(target.parent, target.name)
    prefix = f"{staging_prefix(target.name)}{process_owner()}."
    return Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = libc.renameat2(
            _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
        )
    except (AttributeError, OSError):
        return False
    return done == 0


def swap_in(staged: Path, target: Path) -> None:
    """Make the folder ``staged`` the scan's folder ``target`` as a whole, then drop the old one.

    A reader sees the old folder or the new one, never a mix (a new B-mode with old layers).
    Where the file system cannot exchange two folders in one step, the old folder is moved
    aside first (a reader may then briefly find no folder, never a mixed one).
    """
    if not target.exists():
        os.rename(staged, target)
        return
    if not _exchange(staged, target):
        aside = Path(
            tempfile.mkdtemp(
                prefix=f"{staging_prefix(target.name)}{process_owner()}.", dir=target.parent
            )
        )
        os.rename(target, aside / target.name)
        os.rename(staged, target)
        staged = aside
    shutil.rmtree(staged, ignore_errors=True)


def publish_folder(target: Location, write: Callable[[Location], object]) -> None:
    """Make ``write``'s files the scan's folder ``target`` as a whole: written into a staging
    folder and swapped in (``swap_in``). Object storage has no folder rename: there ``write``
    writes in place, each file one whole object (a reader may see old and new files mixed until
    the scan's rows, committed after this, say which run they belong to)."""
    if is_remote(target):
        write(target)
        return
    staged = staging_folder(Path(target))
    write(staged)
    swap_in(staged, Path(target))


def failure_reason(exc: Exception) -> str:
    """A reason that names the check or the error kind, never a value from the input."""
    if isinstance(exc, ScanCheckFailed):
        return f"check {exc.check}"
    if isinstance(exc, ScanError):  # reasons written for the exporter: keys and checks only
        return f"{type(exc).__name__}: {exc.reason}"
    return type(exc).__name__


def stage_quarantine(
    stage: str, scan_id: str, folder: str, reason: str | None
) -> list[Replacement]:
    """Replace the scan's ``quarantine`` row of ``stage`` (none when ``reason`` is None)."""
    rows = (
        []
        if reason is None
        else [
            {
                "folder": folder,
                "scan_id": scan_id,
                "stage": stage,
                "reason": f"{stage}: {reason}",
                "detected_at": utc_now(),
            }
        ]
    )
    return [Replacement("quarantine", rows, key="scan_id", keys=[scan_id], scope={"stage": stage})]


def _commit(
    result: ScanResult, warehouse: Warehouse, stage: str, scan_id: str, folder: str
) -> None:
    """Publish one result's artifacts, then commit its rows and clear the scan's quarantine."""
    if result.publish is not None:
        result.publish()
    warehouse.replace_all([*result.writes, *stage_quarantine(stage, scan_id, folder, None)])


def run_per_scan(
    scan_ids: Sequence[str],
    work: ScanWork,
    *,
    stage: str,
    warehouse: Warehouse,
    log: Log,
    should_stop: Callable[[], bool] = lambda: False,
    on_commit: Callable[[str, ScanResult], None] | None = None,
) -> BatchOutcome:
    """Run ``work`` on each scan and commit each one on its own; see the module docstring.

    ``work`` raises ``ScanCheckFailed`` or any ``Exception`` to refuse its scan (a
    ``BaseException`` such as ``KeyboardInterrupt`` or Dagster's interrupt ends the batch,
    keeping what was committed). A ``work`` that yields parts has each committed as it comes;
    one that raises after some parts keeps them and its scan is quarantined. ``on_commit`` runs
    after a scan's last rows are committed, with its parts combined.
    """
    folders = dict(
        warehouse.query(
            "SELECT scan_id, folder FROM scans WHERE scan_id IN (SELECT unnest(?))",
            [list(scan_ids)],
        ).itertuples(index=False)
    )
    outcome = BatchOutcome()
    started = time.perf_counter()
    bar = tqdm(scan_ids, desc=stage, unit="scan")
    for position, scan_id in enumerate(bar):
        if should_stop():
            outcome.not_started = list(scan_ids[position:])
            log.info(f"{stage}: stop requested; {len(outcome.not_started)} scans left undone")
            break
        folder = folders.get(scan_id, "")
        try:
            produced = work(scan_id)
            parts = [produced] if isinstance(produced, ScanResult) else produced
            committed = []
            for part in parts:
                _commit(part, warehouse, stage, scan_id, folder)
                committed.append(part)
        except Exception as exc:  # one scan never stops the others
            reason = failure_reason(exc)
            log.error(f"{stage}: quarantined scan {scan_id} ({reason})")
            warehouse.replace_all(stage_quarantine(stage, scan_id, folder, reason))
            outcome.quarantined[scan_id] = reason
            continue
        if not committed:  # nothing to commit still means the scan is done
            _commit(ScanResult(writes=[]), warehouse, stage, scan_id, folder)
        result = ScanResult.combined(committed)
        outcome.done.append(scan_id)
        outcome.results[scan_id] = result
        if on_commit is not None:
            on_commit(scan_id, result)
        if (position + 1) % LOG_EVERY == 0 or position + 1 == len(scan_ids):
            log.info(
                f"{stage}: {position + 1}/{len(scan_ids)} scans"
                f" ({len(outcome.quarantined)} quarantined)"
                f" in {time.perf_counter() - started:.0f} s"
            )
    bar.close()
    outcome.total_seconds = time.perf_counter() - started
    return outcome
