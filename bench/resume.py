"""Benchmark 9: a re-run after a kill at 50 % against an uninterrupted run (issue #22).

On two copies of the bench cohort (``bench.cohort.materialized``: segmented, one champion per
mode, saliency rows cleared so every scan is pending), ``compute_saliency`` runs over the
scans ``layer-platform run`` finds pending (``pending_saliency``), in one batched run in a
child process, timed from its start to its exit:

* **uninterrupted**: copy A;
* **after a kill**: copy B, SIGKILLed (its whole process group) at half the uninterrupted
  run's time; then the re-run over what is still pending, timed the same way.

"50 %" is half of the work, not half of the scans: scans differ in cost (a held-out scan is
explained by every fold member, a development scan by one), so the first half of the scans
can be far less than half of the work. The batch commits each scan as it finishes, so the
re-run does the unfinished work plus the run's fixed cost (a process, loading the champions
and their references) and the scan the kill interrupted: target re-run <= 0.6 x
uninterrupted. Both figures come from the same bench run. The re-run is timed under py-spy
(sampling from outside the process), whose summary a miss links as its profile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.cohort import Cohort, definitions, landing, materialized, saliency_resource
from bench.core import Context, Result, Target, fmt_s, measured
from bench.profiling import process_profile, spied
from layer_platform.orchestration.runner import open_instance, run_job
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.pending import pending_saliency
from layer_platform.warehouse.store import Replacement, Warehouse

BENCHMARK = "resume"
RERUN = Target("ratio", "<=", 0.6)
#: Give up on the child after this many seconds without reaching half of the scans.
WAIT_S = 1800.0


def _copy(cohort: Cohort, ctx: Context, name: str) -> LayerPaths:
    """A copy of the cohort's home with every scan's saliency still to do."""
    target = ctx.work_dir / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(cohort.paths.home, target)
    paths = LayerPaths.from_env(
        {"LAYER_HOME": str(target), "LAYER_LANDING_DIR": str(landing(ctx))}
    ).ensure()
    Warehouse(paths.warehouse).replace_all(
        [Replacement(t, [], key=None) for t in ("layer_saliency", "attribution_diagnostics")]
    )
    return paths


def _saliency(paths: LayerPaths, ctx: Context) -> None:
    """``compute_saliency`` over the pending scans, in one batched run (the child's work)."""
    warehouse = Warehouse(paths.warehouse)
    saliency = saliency_resource(ctx)
    keys = pending_saliency(warehouse, _versions(paths), saliency.attribution_settings())
    defs = definitions(paths, ctx, saliency)
    report = run_job(defs, open_instance(paths), "compute_saliency", partition_keys=keys)
    if report.failed:
        raise RuntimeError(f"resume bench: compute_saliency failed ({report.failed})")


def _versions(paths: LayerPaths) -> dict[str, str]:
    from layer_platform.tracking.mlflow_registry import Tracking, champion_versions

    return champion_versions(Tracking.for_paths(paths))


def _attributed(warehouse: Warehouse) -> int:
    if not warehouse.table_exists("layer_saliency"):
        return 0
    return int(warehouse.query("SELECT count(DISTINCT scan_id) AS n FROM layer_saliency")["n"][0])


def _batch(
    paths: LayerPaths, ctx: Context, kill_after: float | None = None, raw: Path | None = None
) -> float:
    """Wall seconds of a child process running the batch, from its start to its exit; with
    ``kill_after``, its process group is SIGKILLed after that many seconds; with ``raw``, the
    child runs under py-spy, which writes its stacks there (``profiling.spied``)."""
    env = {**os.environ, "LAYER_HOME": str(paths.home), "LAYER_LANDING_DIR": str(landing(ctx))}
    command = [sys.executable, "-m", "bench.resume", ctx.scale.name, str(ctx.threads)]
    started = time.perf_counter()
    child = subprocess.Popen(
        spied(command, raw) if raw is not None else command,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        rc = child.wait(timeout=kill_after if kill_after is not None else WAIT_S)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    seconds = time.perf_counter() - started
    if kill_after is None and rc != 0:
        raise RuntimeError(f"resume bench: the batch exited with {rc} after {fmt_s(seconds)}")
    if kill_after is not None and rc is not None:
        raise RuntimeError("resume bench: the batch ended before the kill")
    return seconds


def run(ctx: Context) -> list[Result]:
    cohort = materialized(ctx)
    n = len(cohort.keys)
    full = _batch(_copy(cohort, ctx, "resume_full"), ctx)
    killed = _copy(cohort, ctx, "resume_killed")
    _batch(killed, ctx, kill_after=full / 2)
    done = _attributed(Warehouse(killed.warehouse))
    raw = ctx.profile_path(f"{BENCHMARK}_{n}_scans_rerun.raw")
    rerun = _batch(killed, ctx, raw=raw)
    name = f"{BENCHMARK}/{n}_scans/rerun_after_kill_at_50pct"
    row = measured(
        BENCHMARK,
        name,
        value=rerun,
        unit="s",
        baseline=full,
        ratio=rerun / full,
        ratio_means="re-run after a kill at half the uninterrupted time / uninterrupted",
        target=RERUN,
        notes=(
            f"{n} scans; the kill at {fmt_s(full / 2)} left {done} attributed; re-run"
            f" {fmt_s(rerun)} vs uninterrupted {fmt_s(full)} (each a child process,"
            " start to exit; the re-run under py-spy)"
        ),
    )
    if not row.met:
        title = f"the re-run after the kill, {n} scans"
        profile = process_profile(
            ctx, f"{BENCHMARK}_{n}_scans_rerun.txt", title, raw, rerun, marker=MAIN_THREAD
        )
        if profile.link:
            row.profile = profile.link
            row.notes += f" Where the re-run's time went (py-spy): {profile.breakdown(_PARTS)}."
    raw.unlink(missing_ok=True)
    return [row]


#: The root frame of the child's main thread (``python -m bench.resume``).
MAIN_THREAD = "_run_module_as_main"
#: Parts of the re-run named in a miss's note (label → function names in the profile).
_PARTS = {
    "importing the platform": ("_find_and_load",),
    "the Dagster run": ("run_job",),
    "within it loading the champions": ("load_champions",),
    "their frozen references": ("champion_references",),
    "attributing scans": ("attribute_batch_scan",),
    "committing scans": ("_commit",),
}


def _child(scale: str, threads: int) -> None:
    """One batch: ``compute_saliency`` over the pending scans of ``$LAYER_HOME``."""
    from bench.scales import SCALES
    from layer_platform.compute import select_device

    paths = LayerPaths.from_env().ensure()
    ctx = Context(
        scale=SCALES[scale],
        device=select_device("auto"),
        threads=threads,
        results_dir=paths.home,
        work_dir=paths.home,
    )
    _saliency(paths, ctx)


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
