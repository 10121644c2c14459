"""``python -m bench``: run the benchmarks, write the report, optionally publish the latest copy."""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

from bench.core import Context, Result
from bench.machine import REPO_ROOT, load_average, machine_facts
from bench.registry import BENCHMARKS, select
from bench.report import PROFILES, REPORT_JSON, REPORT_MD, publish, write_report
from bench.scales import SCALES
from layer_platform.compute import DEVICE_CHOICES, select_device

DEFAULT_RESULTS = REPO_ROOT / "bench" / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="LAYER benchmarks against baselines measured in the same run.",
    )
    parser.add_argument(
        "--scale",
        choices=sorted(SCALES),
        default="default",
        help="tiny: smoke test (seconds); default: this CPU (<20 min); paper: one GPU",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_RESULTS, help="results folder (default bench/results)"
    )
    parser.add_argument(
        "--only",
        help="comma-separated benchmark keys: " + ", ".join(b.key for b in BENCHMARKS),
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a CPU shared with other work, more threads "
        "wait on each other; 0 keeps torch's default)",
    )
    parser.add_argument(
        "--cohort-scans",
        type=int,
        help="scans of the simulated cohort of benchmarks 2-4 and 8 (default: the scale's; a "
        "smaller N where a lease or a machine limits the run: every figure they report is per "
        "scan or names N)",
    )
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--publish",
        type=Path,
        help="also copy the report and its profiles here (make bench: bench/results/latest)",
    )
    return parser


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _error_row(key: str, exc: BaseException) -> Result:
    detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return Result(
        benchmark=key,
        name=f"{key}/error",
        value=None,
        unit="",
        baseline=None,
        ratio=None,
        ratio_means="",
        target="runs without error",
        met=False,
        notes=f"the benchmark failed: {detail}",
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads < 0:
        _parser().error("--threads must be >= 0")
    if args.cohort_scans is not None and args.cohort_scans < 2:
        _parser().error("--cohort-scans must be >= 2 (one subject, two sides)")
    scale = SCALES[args.scale]
    if args.cohort_scans is not None:
        scale = replace(scale, cohort_scans=args.cohort_scans)
    benchmarks = select(args.only.split(",") if args.only else None)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    results_dir = args.out.resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    for stale in (REPORT_JSON, REPORT_MD):
        (results_dir / stale).unlink(missing_ok=True)
    shutil.rmtree(results_dir / PROFILES, ignore_errors=True)
    work_dir = Path(tempfile.mkdtemp(prefix="layer-bench-"))
    started_utc = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    ctx = Context(
        scale=scale,
        device=device,
        threads=torch.get_num_threads(),
        results_dir=results_dir,
        work_dir=work_dir,
        seed=args.seed,
        log=_log,
    )
    facts = ctx.facts = machine_facts(device, ctx.threads)
    started = time.perf_counter()
    results: list[Result] = []
    failed = False
    try:
        for benchmark in benchmarks:
            _log(f"[{benchmark.number}] {benchmark.title} ({scale.name})")
            began = time.perf_counter()
            try:
                results += benchmark.runner()(ctx)
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                failed = True
                traceback.print_exc()
                results.append(_error_row(benchmark.key, exc))
            _log(f"    {time.perf_counter() - began:.1f} s")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    facts.update(
        load_average_end=load_average(),
        started_utc=started_utc,
        wall_s=round(time.perf_counter() - started, 1),
    )
    argv_text = " ".join(argv if argv is not None else sys.argv[1:])
    command = f"python -m bench {argv_text}".strip()
    json_path, md_path = write_report(results, facts, scale, results_dir, command)
    if args.publish:
        publish(results_dir, args.publish.resolve())
    met = sum(r.met for r in results)
    _log(f"{met} of {len(results)} targets met; report: {md_path} and {json_path}")
    return 1 if failed else 0
