"""Benchmark 2: cohort saliency throughput — the whole ``layer_saliency`` stage vs the model
compute inside it, measured in the same run.

On the bench cohort (``bench.cohort``: simulated scans through the platform's Dagster jobs, an
untrained default classifier as every mode's champion), the ``compute_saliency`` job runs over
every scan in one batched run with the platform's ``SaliencyResource`` defaults (all modes, all
five methods, the ``cohort`` reference). Its wall time is compared with the time the stage
itself records around each method's attribution and aggregation (``attribution_diagnostics``,
metric ``seconds``): the rest is loading champions and volumes, reference tables, writing the
maps and previews, DuckDB writes and checks. Target: the rest adds <= 20%. The 4,000-scan
projection is linear in this run's wall time.
"""

from __future__ import annotations

import cProfile
import io
import pstats

from bench.cohort import Cohort, materialized, preset, timed_job
from bench.core import Context, Result, Target, measured

BENCHMARK = "cohort_saliency"
OVERHEAD = Target("ratio", "<=", 1.2)
#: Cohort size of the paper the projection is made for.
PAPER_SCANS = 4_000
#: Scans re-materialized under cProfile when the target is missed.
PROFILED_SCANS = 4

COMPUTE = """
    SELECT method, count(DISTINCT scan_id) AS scans, count(*) AS attributions,
           sum(value) AS seconds
    FROM attribution_diagnostics WHERE metric = 'seconds'
    GROUP BY method ORDER BY seconds DESC
"""

#: Stage parts named in the "why" of a missed target (function name → what it is).
_PARTS = {
    "profile_scan": "attribution and aggregation",
    "write_volume": "writing the .nii.gz maps",
    "mid_slices_png": "preview PNGs",
    "_champions": "loading the champions",
    "control_tables": "the cohort reference tables",
    "load_preprocessed": "reading the volumes",
    "replace": "DuckDB writes",
    "_saliency_checks": "asset checks",
}


def run(ctx: Context) -> list[Result]:
    cohort = materialized(ctx)
    seconds, runs = timed_job(cohort, "compute_saliency", cohort.keys)
    compute = cohort.warehouse.query(COMPUTE)
    model_seconds = float(compute["seconds"].sum())
    n = len(cohort.keys)
    default = cohort.saliency.default_method
    ctx.shared["saliency_stage"] = {
        "scans": n,
        "seconds": seconds,
        "model_seconds": model_seconds,
        "default_method_seconds": float(compute.loc[compute["method"] == default, "seconds"].sum()),
    }
    split = ", ".join(f"{r.method} {r.seconds:.1f} s" for r in compute.itertuples())
    row = measured(
        BENCHMARK,
        f"{BENCHMARK}/{n}_scans/stage_vs_model_compute",
        value=seconds,
        unit="s",
        baseline=model_seconds,
        ratio=seconds / model_seconds,
        ratio_means="value / baseline (stage wall time over the model compute inside it)",
        target=OVERHEAD,
        notes=(
            f"compute_saliency over {n} simulated scans at the {preset(ctx)} grid "
            f"in {runs} batched run(s), every mode with a champion and the methods "
            f"{', '.join(cohort.saliency.methods)} (SaliencyResource defaults"
            f"{'; tiny settings' if ctx.scale.name == 'tiny' else ''}; "
            f"{ctx.threads} torch thread(s)); model compute as the stage records it: {split}. "
            f"{n / seconds * 60:.1f} scans/min, so {PAPER_SCANS:,} scans would take "
            f"{PAPER_SCANS * seconds / n / 3600:.1f} h on this machine (linear projection)."
        ),
    )
    if not row.met:
        path = ctx.profile_path(f"cohort_saliency_{n}_scans.txt")
        shares = _profile(cohort, path)
        row.profile = ctx.relative(path)
        parts = ", ".join(f"{_PARTS[k]} {v:.0%}" for k, v in shares.items() if v >= 0.01)
        row.notes += f" Why: of a profiled re-run over {PROFILED_SCANS} scans: {parts}."
    return [row]


def _profile(cohort: Cohort, path) -> dict[str, float]:
    """cProfile of the stage re-run over a few scans; returns each part's share of the run."""
    keys = cohort.keys[:PROFILED_SCANS]
    profiler = cProfile.Profile()
    profiler.enable()
    total, _ = timed_job(cohort, "compute_saliency", keys, record=False)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(40)
    path.write_text(
        f"# cProfile: compute_saliency re-run over {len(keys)} scans ({total:.1f} s)\n\n"
        f"```\n{text.getvalue()}\n```\n"
    )
    cumulative: dict[str, float] = {}
    for (_file, _line, func), entry in stats.stats.items():  # type: ignore[attr-defined]
        if func in _PARTS:
            cumulative[func] = cumulative.get(func, 0.0) + entry[3]
    return {func: cumulative.get(func, 0.0) / total for func in _PARTS}
