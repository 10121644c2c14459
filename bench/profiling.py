"""Where the time of a missed target goes: one profiled call, summarized under ``profiles/``.

``profile_call`` samples the bench's own process with py-spy (``--idle``: time spent waiting on
a disk, a lock or a sleep counts, as it does in wall time) while it runs one call, and writes
the frames with the largest inclusive and self shares of that call's samples. Without a
working ``py-spy`` (it is in the ``dev`` extra) it falls back to cProfile, whose per-call
overhead inflates call-heavy Python such as Dagster's: the summary names the tool used.
Torch work is profiled with ``torch.profiler`` in its own benchmarks, SQL with DuckDB's
``EXPLAIN ANALYZE``.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.core import Context

#: Samples per second; py-spy's default, cheap enough not to slow the call measurably.
RATE = 100
#: Rows of each table in the written summary.
TOP = 40
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


@dataclass
class Profile:
    """A profiled call: its wall seconds, the tool, each function name's inclusive share."""

    tool: str
    seconds: float
    inclusive: dict[str, float] = field(default_factory=dict)
    link: str = ""

    def share(self, *functions: str) -> float:
        """The largest inclusive share among ``functions``: a name matches a profiled name
        equal to it or qualifying it (``replace`` matches ``Warehouse.replace``), and a
        qualified name matches its bare form (cProfile records bare names)."""

        def matches(name: str, wanted: str) -> bool:
            return name == wanted or name.endswith("." + wanted) or wanted.endswith("." + name)

        return max(
            (v for k, v in self.inclusive.items() for f in functions if matches(k, f)),
            default=0.0,
        )

    def breakdown(self, parts: Mapping[str, Sequence[str]], floor: float = 0.01) -> str:
        """``"label 12%, ..."`` for each part (label → its function names) of ``floor`` or more."""
        shares = {label: self.share(*functions) for label, functions in parts.items()}
        return ", ".join(f"{label} {v:.0%}" for label, v in shares.items() if v >= floor)


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def _profiled_call(fn: Callable[[], object]) -> None:
    """Marks the profiled call's frames in py-spy's stacks (other threads are left out)."""
    fn()


def _short(file: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file.rsplit("/work/main/", 1)[-1]


def _ours(label: str) -> bool:
    return "(layer_platform/" in label or "(bench/" in label


def _frames(stack: str) -> list[tuple[str, str]]:
    """``func (file:line);...`` → [(func, "func (file)")], outermost first."""
    out = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame.strip())
        func, file = (match["func"], match["file"]) if match else (frame.strip(), "")
        out.append((func, f"{func} ({_short(file)})" if file else func))
    return out


def _summarize_stacks(lines: Iterable[str], marker: str) -> tuple[int, Counter, Counter, Counter]:
    """Samples inside the profiled call (below the ``marker`` frame); inclusive and self counts
    per frame, and per name."""
    total = 0
    inclusive: Counter = Counter()
    own: Counter = Counter()
    by_name: Counter = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = _frames(stack)
        names = [func for func, _ in frames]
        if marker not in names:
            continue
        frames = frames[names.index(marker) + 1 :]
        n = int(count)
        total += n
        for label in {label for _, label in frames}:
            inclusive[label] += n
        for func in {func for func, _ in frames}:
            by_name[func] += n
        if frames:
            own[frames[-1][1]] += n
    return total, inclusive, own, by_name


def _with_py_spy(exe: str, fn: Callable[[], object], raw: Path) -> float | None:
    """Run ``fn`` under py-spy attached to this process; None when py-spy cannot attach."""
    spy = subprocess.Popen(
        [exe, "record", "--pid", str(os.getpid()), "--idle", "--nonblocking",
         "-r", str(RATE), "-f", "raw", "-o", str(raw)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert spy.stdout is not None
    if "Sampling" not in spy.stdout.readline():  # printed once it is attached
        spy.kill()
        spy.wait()
        return None
    started = time.perf_counter()
    try:
        _profiled_call(fn)
    finally:
        seconds = time.perf_counter() - started
        spy.send_signal(signal.SIGINT)
        spy.communicate(timeout=120)
    return seconds


def _table(title: str, counts: Counter, total: int) -> list[str]:
    rows = [f"## {title}", "", "| share | frame |", "|---:|---|"]
    rows += [f"| {n / total:.1%} | `{label}` |" for label, n in counts.most_common(TOP)]
    return [*rows, ""]


def _py_spy_summary(
    ctx: Context, path: Path, title: str, seconds: float, raw: Path, marker: str
) -> Profile:
    """Write the summary of py-spy's ``raw`` stacks (then removed) to ``path``."""
    lines = raw.read_text().splitlines() if raw.is_file() else []
    raw.unlink(missing_ok=True)
    total, inclusive, own, by_name = _summarize_stacks(lines, marker)
    total = max(total, 1)
    path.write_text(
        "\n".join(
            [
                f"# py-spy: {title} ({seconds:.2f} s, {total} samples at {RATE} Hz, "
                "waiting included)",
                "",
                "Inclusive: share of the call's samples with the frame on the stack; "
                "self: share with the frame on top.",
                "",
                *_table("Inclusive", inclusive, total),
                *_table("Self", own, total),
                *_table(
                    "Inclusive, the project's own frames",
                    Counter({k: v for k, v in inclusive.items() if _ours(k)}),
                    total,
                ),
            ]
        )
    )
    shares = {func: n / total for func, n in by_name.items()}
    return Profile("py-spy", seconds, shares, ctx.relative(path))


def spied(command: Sequence[str], raw: Path) -> list[str]:
    """``command`` under ``py-spy record`` (raw stacks to ``raw``, waiting included; without
    pausing the process to sample it, so a timed child is not slowed), for a child process whose
    own run is the profiled call; ``command`` as it is without py-spy."""
    exe = _py_spy()
    if exe is None:
        return list(command)
    return [exe, "record", "--idle", "--nonblocking", "-r", str(RATE), "-f", "raw",
            "-o", str(raw), "--", *command]  # fmt: skip


def process_profile(
    ctx: Context, name: str, title: str, raw: Path, seconds: float, *, marker: str
) -> Profile:
    """The summary (``profiles/<name>``) of the child process ``spied`` ran for ``seconds``,
    over the samples below the ``marker`` frame (say the main thread's root, so that waiting
    helper threads such as tqdm's monitor do not count); no link when py-spy left no stacks."""
    if not raw.is_file():
        return Profile("none", seconds)
    return _py_spy_summary(ctx, ctx.profile_path(name), title, seconds, raw, marker)


def profile_call(
    ctx: Context, name: str, title: str, fn: Callable[[], object], *, fallback: bool = True
) -> Profile:
    """Profile one call of ``fn`` into ``profiles/<name>``; returns shares and the link.

    Without py-spy: cProfile when ``fallback``, else ``fn`` runs unprofiled (no link), for a
    call whose own timing must not carry cProfile's overhead.
    """
    exe = _py_spy()
    path = ctx.profile_path(name)
    if exe is not None:
        raw = path.with_suffix(".raw")
        seconds = _with_py_spy(exe, fn, raw)
        if seconds is not None:
            return _py_spy_summary(ctx, path, title, seconds, raw, "_profiled_call")
    if not fallback:
        started = time.perf_counter()
        fn()
        return Profile("none", time.perf_counter() - started)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    try:
        fn()
    finally:
        profiler.disable()
    seconds = time.perf_counter() - started
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(TOP)
    stats.sort_stats("tottime").print_stats(TOP // 2)
    path.write_text(
        f"# cProfile (py-spy not installed): {title} ({seconds:.2f} s)\n\n"
        f"```\n{text.getvalue()}\n```\n"
    )
    cumulative: dict[str, float] = {}
    for (_file, _line, func), entry in stats.stats.items():  # type: ignore[attr-defined]
        cumulative[func] = max(cumulative.get(func, 0.0), entry[3])
    shares = {func: t / seconds for func, t in cumulative.items()}
    return Profile("cProfile", seconds, shares, ctx.relative(path))


def torch_profile(ctx: Context, name: str, title: str, fn: Callable[[], object]) -> str:
    """torch.profiler table of one call of ``fn`` (top 20 ops by self time), written to
    ``profiles/<name>`` under ``title``; returns the report's link."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ctx.on_cuda else [])
    sort = "self_cuda_time_total" if ctx.on_cuda else "self_cpu_time_total"
    with profile(activities=activities) as prof:
        fn()
        ctx.sync()
    path = ctx.profile_path(name)
    path.write_text(
        f"# torch.profiler: {title}\n\n```\n"
        + prof.key_averages().table(sort_by=sort, row_limit=20)
        + "\n```\n"
    )
    return ctx.relative(path)
