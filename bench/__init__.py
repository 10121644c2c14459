"""Benchmarks of the LAYER platform, each against a baseline measured in the same run.

``python -m bench --scale {tiny,default,paper}`` (or ``make bench``) runs every benchmark in
``bench.registry.BENCHMARKS`` and writes ``report.json`` (one object per target) and
``report.md`` (the same table plus the machine it ran on) under ``bench/results/``. Absolute
times on a shared CPU are noise; the ratios to the in-run baselines are the claim.
"""
