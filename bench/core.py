"""What every benchmark shares: one result row per target, the run context, and timing.

Timing protocol: every measured call runs once to warm up (allocator, oneDNN primitives, caches),
then the calls of one comparison run in *interleaved* rounds (A, B, C, A, B, C, ...), so a burst
of load from other processes hits candidate and baseline alike. The fastest round is the
estimate of a call's cost (the least disturbed one, as ``timeit`` recommends); the median is
kept in the notes. Ratios are formed from estimates of the same round set.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.scales import Scale

#: Comparisons a target can make.
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


@dataclass(frozen=True)
class Target:
    """A claim about a row: ``on`` (``value`` or ``ratio``) ``op`` ``bound``, e.g. ratio <= 1.25."""

    on: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.on not in ("value", "ratio") or self.op not in _OPS:
            raise ValueError(f"a target compares value or ratio with {list(_OPS)}; got {self}")

    def __str__(self) -> str:
        return f"{self.on} {self.op} {self.bound:g}"

    def met(self, value: float | None, ratio: float | None) -> bool:
        subject = value if self.on == "value" else ratio
        return subject is not None and _OPS[self.op](subject, self.bound)

    def shortfall(self, value: float | None, ratio: float | None) -> str:
        """How far a measurement misses: "missed: ratio 1.14, target >= 3 (2.6x short)"."""
        subject = value if self.on == "value" else ratio
        if subject is None:
            return "not measured"
        if self.met(value, ratio):
            return "met"
        missed = f"missed: {self.on} {subject:.3g}, target {self.op} {self.bound:g}"
        if self.bound == 0 or subject == 0:  # no factor between a count and zero
            return missed
        factor = self.bound / subject if self.op in (">=", ">") else subject / self.bound
        return f"{missed} ({factor:.2g}x off)"


@dataclass
class Result:
    """One target of one benchmark: a row of ``report.json`` and of the report table.

    Args:
        benchmark: the benchmark's registry key (``attribution``, ``warehouse``, ...).
        name: unique row name, ``<benchmark>/<setting>/<what>``.
        value: what was measured (None when not run).
        unit: unit of ``value`` and ``baseline``.
        baseline: the same quantity for the baseline, measured in the same run.
        ratio: the number the target is about; ``ratio_means`` says how it is formed.
        target: the claim, e.g. ``ratio <= 1.25``.
        met: whether the measurement meets the target (always False when not run).
        notes: how it was measured, what the figures mean, and why a target is missed.
        profile: path of a profile summary (relative to the report) for a missed target.
    """

    benchmark: str
    name: str
    value: float | None
    unit: str
    baseline: float | None
    ratio: float | None
    ratio_means: str
    target: str
    met: bool
    notes: str = ""
    profile: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def measured(
    benchmark: str,
    name: str,
    *,
    value: float,
    unit: str,
    baseline: float | None,
    ratio: float | None,
    ratio_means: str,
    target: Target,
    notes: str = "",
) -> Result:
    """A row whose ``met`` follows from its numbers and its target; a miss says by how much."""
    met = target.met(value, ratio)
    if not met:
        notes = f"**{target.shortfall(value, ratio).capitalize()}.** {notes}"
    return Result(
        benchmark=benchmark,
        name=name,
        value=value,
        unit=unit,
        baseline=baseline,
        ratio=ratio,
        ratio_means=ratio_means,
        target=str(target),
        met=met,
        notes=notes,
    )


def not_run(benchmark: str, name: str, *, unit: str, target: Target, reason: str) -> Result:
    """A target that was not measured: never met, and the note says why."""
    return Result(
        benchmark=benchmark,
        name=name,
        value=None,
        unit=unit,
        baseline=None,
        ratio=None,
        ratio_means="",
        target=str(target),
        met=False,
        notes=f"not yet run: {reason}",
    )


@dataclass
class Context:
    """Where and how a run happens; handed to every benchmark's ``run``.

    Args:
        scale: problem sizes (``bench.scales``).
        device: ``layer_platform.compute.select_device``'s choice (CUDA when present).
        threads: torch CPU threads used by every benchmark.
        results_dir: ``report.json``/``report.md`` go here, profiles under ``profiles/``.
        work_dir: scratch space (simulated scans, DuckDB files), removed after the run.
        seed: seeds models and synthetic data.
        log: progress lines (stderr).
        facts: machine facts for the report.
        shared: state benchmarks share within a run (e.g. the materialized cohort).
    """

    scale: Scale
    device: torch.device
    threads: int
    results_dir: Path
    work_dir: Path
    seed: int = 0
    log: Callable[[str], None] = print
    facts: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        """Wait for queued GPU work, so a timer measures it (no-op on the CPU)."""
        if self.on_cuda:
            torch.cuda.synchronize(self.device)

    def profile_path(self, name: str) -> Path:
        """A profile file under ``results_dir/profiles`` (created on demand)."""
        folder = self.results_dir / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def relative(self, path: Path) -> str:
        """``path`` as the report links it (relative to ``results_dir``)."""
        return path.relative_to(self.results_dir).as_posix()


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed round of one call."""

    samples: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def time_call(fn: Callable[[], object], sync: Callable[[], None] | None = None) -> float:
    """Wall seconds of one call of ``fn`` (GPU work included when ``sync`` is given)."""
    if sync:
        sync()
    started = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - started


def interleaved(
    calls: Mapping[str, Callable[[], object]],
    repeats: int,
    *,
    sync: Callable[[], None] | None = None,
    warmup: bool = True,
) -> dict[str, Timing]:
    """Time each call ``repeats`` times in interleaved rounds, after one warm-up call each."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    if warmup:
        for fn in calls.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            samples[name].append(time_call(fn, sync))
    return {name: Timing(tuple(values)) for name, values in samples.items()}


def fmt_s(seconds: float) -> str:
    """Seconds for notes: ms below one second."""
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
