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

from bench.cohort import attributed, preset, reattributing, timed_job
from bench.core import Context, Result, Target, measured
from bench.profiling import profile_call

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

#: Stage parts named in the "why" of a missed target (what it is → its function names).
_PARTS = {
    "attribution and aggregation": ("profile_scan",),
    "writing the .nii.gz maps": ("write_volume",),
    "preview PNGs": ("mid_slices_png",),
    "loading the champions": ("load_champions",),
    "the frozen cohort reference": ("champion_references",),
    "reading the volumes": ("load_preprocessed",),
    "DuckDB writes": ("Warehouse.replace",),
    "asset checks": ("_saliency_checks",),
}


def run(ctx: Context) -> list[Result]:
    cohort = attributed(ctx)
    seconds = cohort.stage_seconds["compute_saliency"]
    runs = cohort.stage_runs["compute_saliency"]
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
        keys = cohort.keys[:PROFILED_SCANS]
        anew = reattributing(ctx, cohort)
        profile = profile_call(
            ctx,
            f"cohort_saliency_{n}_scans.txt",
            f"compute_saliency re-run over {len(keys)} scans",
            lambda: timed_job(cohort, "compute_saliency", keys, record=False, defs=anew),
        )
        row.profile = profile.link
        row.notes += (
            f" Why ({profile.tool} profile of a re-run over {len(keys)} scans): "
            f"{profile.breakdown(_PARTS)}."
        )
    return [row]
