"""Every benchmark, in the issue's order: one module per benchmark, each with ``run(ctx)``.

A module's ``run(ctx: Context) -> list[Result]`` returns one row per target. Benchmarks that
cannot run yet return ``not_run`` rows (never met) whose note says why; adding one is adding a
module and a line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from bench.core import Context, Result


@dataclass(frozen=True)
class Benchmark:
    number: int
    key: str
    title: str

    def runner(self) -> Callable[[Context], list[Result]]:
        """The module's ``run``, imported on demand (``--only`` skips the others' imports)."""
        return importlib.import_module(f"bench.{self.key}").run


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(1, "attribution", "Attribution efficiency (IG, occlusion, layer ablation)"),
    Benchmark(2, "cohort_saliency", "Cohort saliency throughput"),
    Benchmark(3, "orchestration", "Dagster orchestration overhead"),
    Benchmark(4, "incremental", "Incremental cost of one new scan"),
    Benchmark(5, "warehouse", "Warehouse queries over layer_saliency"),
    Benchmark(6, "preprocessing", "Preprocessing I/O and memory"),
    Benchmark(7, "training", "Training throughput and data-loader waiting"),
    Benchmark(8, "gpu", "GPU: 4,000-scan saliency projection"),
    Benchmark(9, "resume", "Re-run after a kill at 50 % vs an uninterrupted saliency batch"),
    Benchmark(10, "precision", "Classifier training precision: speed and external-cohort AUC"),
    Benchmark(11, "schedule", "Classifier learning-rate schedule: training time and external AUC"),
    Benchmark(12, "attribution_precision", "Attribution in the training precision vs float32"),
)


def select(keys: list[str] | None) -> list[Benchmark]:
    """The benchmarks named in ``keys`` (all when None), in registry order."""
    if not keys:
        return list(BENCHMARKS)
    known = {b.key for b in BENCHMARKS}
    unknown = sorted(set(keys) - known)
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; expected of {sorted(known)}")
    return [b for b in BENCHMARKS if b.key in keys]
