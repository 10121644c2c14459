"""Benchmark 4: incremental cost of one new scan (not yet run).

What it is to measure: on a materialized cohort, ``layer-platform run`` after one scan arrives —
partitions materialized and wall time — vs one scan's per-scan cost (target <= 2x, plus the
summary refresh, which must be SQL over ``layer_saliency`` and never re-read the voxel maps).

Why it does not run yet: what one arrival costs depends on what the scan carries, by the
platform's design. An annotated scan changes the segmenter's training data, so ``run``
retrains the segmenter, re-segments every scan and so re-attributes every scan; a labelled scan
retrains the classifiers, and new champions re-attribute every scan. A scan with neither is
segmented by the model, and the bench cohort's one-epoch segmenter would fail its QC, so the
scan would get no saliency at all. A meaningful figure needs a decision on which arrival to
measure and a trained segmenter in the bench cohort (minutes of training on this CPU).
"""

from __future__ import annotations

from bench.core import Context, Result, Target, not_run

BENCHMARK = "incremental"
REASON = (
    "an annotated or labelled arrival retrains the segmenter or the classifiers and so "
    "re-attributes every scan (by design); an arrival with neither needs a trained segmenter "
    "to pass segmentation QC, which the bench cohort's one-epoch segmenter is not (see "
    "bench/incremental.py)"
)


def run(ctx: Context) -> list[Result]:
    return [
        not_run(
            BENCHMARK,
            f"{BENCHMARK}/one_scan_vs_per_scan_cost",
            unit="s",
            target=Target("ratio", "<=", 2.0),
            reason=REASON,
        )
    ]
