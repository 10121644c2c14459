"""Run intake's folder inspection on many hostile folders in one child process, and watch it.

The child limits its address space (``RLIMIT_AS``), records every ``open`` Python makes
(``sys.addaudithook``), measures each folder's peak RSS over the RSS it started from (``VmHWM``
reset per folder: it sees what SimpleITK, nibabel or pydicom allocate in C, which
``tracemalloc`` cannot), and gives each folder a time limit. It
reports one JSON line per folder; the parent (:func:`run_batch`) judges the invariants.

Usage (the parent does this): ``python -m layer_platform_tests.ingestion.sandbox JOB.json``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Extra address space the child may map beyond its size after warming up: a runaway allocation
#: fails (MemoryError, reported as a finding) instead of taking the machine down.
AS_HEADROOM_MIB = 1536
#: The documented bound: no hostile folder may raise the child's peak RSS by more than this over
#: the peak after reading one good scan of every format (docs/reliability.md).
RSS_BOUND_MIB = 128
#: Seconds one folder may take before it counts as a hang.
CASE_SECONDS = 20


@dataclass(frozen=True)
class Outcome:
    """What inspecting one folder did."""

    folder: str
    accepted: int
    quarantined: int
    reason: str
    raised: str
    outside_opens: list[str]
    rss_growth_mib: float


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(next(x for x in status if x.startswith(field + ":")).split()[1])


def _reset_peak() -> float:
    """Reset the peak-RSS mark (``VmHWM``) to the current RSS; return that RSS in MiB.

    A per-case peak needs the reset: ``ru_maxrss`` never goes down, so a case allocating less
    than an earlier peak (imports, a warm-up read) would show no growth at all.
    """
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status_kib("VmRSS") / 1024


def _child(job: dict[str, Any]) -> None:
    """The child's main: warm up, clamp, inspect each folder, print one JSON line each."""
    from layer_platform.ingestion.intake import intake
    from layer_platform.ingestion.landing import LandedFolder
    from layer_platform.ingestion.policy import IntakePolicy

    landing = Path(job["landing"])
    policy = IntakePolicy()

    def inspect(name: str) -> tuple[Any, str]:
        folder = LandedFolder(name, landing / name, "fp")
        try:
            return intake([folder], landing, {}, policy), ""
        except BaseException as exc:
            return None, type(exc).__name__

    for name in job["warmup"]:  # imports and first-use allocations happen here, not in a case
        inspect(name)
    allowed = tuple(str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, *job["allow"]))
    current: list[str] = [""]
    opened: list[str] = []

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and current[0] and isinstance(args[0], str | bytes):
            path = os.path.realpath(os.fsdecode(args[0]))
            if not path.startswith((current[0], *allowed)):
                opened.append(path)

    sys.addaudithook(audit)
    limit = _status_kib("VmSize") * 1024 + AS_HEADROOM_MIB * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def hang(signum: int, frame: object) -> None:
        raise TimeoutError(f"over {CASE_SECONDS} s")

    signal.signal(signal.SIGALRM, hang)
    watchdog_seconds = 2 * CASE_SECONDS  # C code ignores SIGALRM's handler: end the process
    for name in job["cases"]:
        baseline = _reset_peak()
        current[0], opened[:] = os.path.realpath(landing / name) + os.sep, []
        signal.alarm(CASE_SECONDS)
        faulthandler.dump_traceback_later(watchdog_seconds, exit=True)
        result, raised = inspect(name)
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        current[0] = ""
        reasons = [q.reason for q in result.quarantined] if result else []
        print(
            json.dumps(
                {
                    "folder": name,
                    "accepted": len(result.accepted) if result else 0,
                    "quarantined": len(reasons),
                    "reason": reasons[0] if reasons else "",
                    "raised": raised,
                    "outside_opens": sorted(set(opened)),
                    "rss_growth_mib": _status_kib("VmHWM") / 1024 - baseline,
                }
            ),
            flush=True,
        )


def _run_child(job: Path, repo: Path, timeout: float) -> tuple[list[str], str]:
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__, str(job)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=repo,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else expired.stdout
        return [x for x in (out or "").splitlines() if x.startswith("{")], "timeout"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return lines, "" if done.returncode == 0 else f"rc {done.returncode}: {done.stderr[-300:]}"


def run_batch(
    landing: Path, cases: list[str], warmup: list[str], *, timeout: float = 600
) -> list[Outcome]:
    """Inspect ``cases`` (folder names under ``landing``) in sandboxed child processes.

    ``warmup`` folders (good scans of every format) are inspected first, unmeasured. A child
    that dies or hangs in C code (the watchdog ends it) records that case as ``raised="died
    ..."`` and a new child goes on with the rest: a crash is a finding, not the end of the run.
    """
    repo = Path(__file__).resolve().parents[2]
    job = landing.parent / "sandbox-job.json"
    outcomes: list[Outcome] = []
    while len(outcomes) < len(cases):
        rest = cases[len(outcomes) :]
        job.write_text(
            json.dumps(
                {"landing": str(landing), "cases": rest, "warmup": warmup, "allow": [str(repo)]}
            )
        )
        lines, death = _run_child(job, repo, timeout)
        outcomes += [Outcome(**json.loads(line)) for line in lines]
        if death and len(outcomes) < len(cases):
            folder = cases[len(outcomes)]
            outcomes.append(Outcome(folder, 0, 0, "", f"died ({death})", [], 0.0))
    return outcomes


def violations(outcome: Outcome) -> list[str]:
    """The invariants one folder's inspection broke (empty: all held)."""
    found = []
    if outcome.raised:
        found.append(f"intake raised {outcome.raised}")
    if outcome.accepted + outcome.quarantined != 1:
        found.append(f"{outcome.accepted} accepted + {outcome.quarantined} quarantined, not 1")
    if outcome.outside_opens:
        found.append(f"opened outside its folder: {outcome.outside_opens}")
    if outcome.rss_growth_mib > RSS_BOUND_MIB:
        found.append(f"peak RSS grew {outcome.rss_growth_mib:.0f} MiB (> {RSS_BOUND_MIB})")
    if "MemoryError" in outcome.reason or "TimeoutError" in outcome.reason:
        found.append(f"refused only by the sandbox's limits: {outcome.reason}")
    return found


if __name__ == "__main__":
    _child(json.loads(Path(sys.argv[1]).read_text()))
