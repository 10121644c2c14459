"""Benchmark 8: the 4,000-scan saliency projection on one GPU (target < 30 minutes).

Every other benchmark already runs on CUDA when present (``select_device``); ``--scale paper``
adds the GPU grid 128 x 352 x 48 and the issue's 200-scan cohort. The projection takes
benchmark 2's stage on that cohort: its model compute for the default method, scaled by the
stage's measured overhead, times 4,000 / scans. Without CUDA it reports no figure.
"""

from __future__ import annotations

from bench.core import Context, Result, Target, measured, not_run

BENCHMARK = "gpu"
TARGET = Target("value", "<", 30.0)
PAPER_SCANS = 4_000


def run(ctx: Context) -> list[Result]:
    name = f"{BENCHMARK}/saliency_4000_scans_projection"
    stage = ctx.shared.get("saliency_stage")
    if not ctx.on_cuda or stage is None:
        reason = (
            f"no CUDA device on this machine (ran on {ctx.device}); run "
            "`python -m bench --scale paper` on a GPU machine"
            if not ctx.on_cuda
            else "needs benchmark 2 (cohort_saliency) in the same run"
        )
        return [not_run(BENCHMARK, name, unit="min", target=TARGET, reason=reason)]
    overhead = stage["seconds"] / stage["model_seconds"]
    per_scan = stage["default_method_seconds"] * overhead / stage["scans"]
    return [
        measured(
            BENCHMARK,
            name,
            value=PAPER_SCANS * per_scan / 60,
            unit="min",
            baseline=None,
            ratio=None,
            ratio_means="",
            target=TARGET,
            notes=(
                f"{ctx.facts.get('device', ctx.device)}: default-method compute "
                f"{stage['default_method_seconds']:.1f} s over {stage['scans']} scans (all "
                f"modes), x the stage's overhead {overhead:.2f}, x {PAPER_SCANS:,} / "
                f"{stage['scans']} scans."
            ),
        )
    ]
