"""``report.json`` (one object per target) and ``report.md`` (machine facts, table, notes)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from bench.attribution import occlusion_band
from bench.core import Result
from bench.registry import BENCHMARKS
from bench.scales import Scale

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PROFILES = "profiles"

_FACT_LABELS = {
    "cpu_model": "CPU model",
    "logical_cpus": "logical CPUs",
    "cpus_available": "CPUs available to the process",
    "torch_threads": "torch CPU threads used",
    "memory_gib": "memory (GiB)",
    "device": "device",
    "torch": "torch",
    "cuda": "CUDA",
    "captum": "captum",
    "monai": "MONAI",
    "duckdb": "DuckDB",
    "pandas": "pandas",
    "python": "Python",
    "platform": "platform",
    "git": "git commit",
    "load_average_start": "load average at start",
    "load_average_end": "load average at end",
    "started_utc": "started (UTC)",
    "wall_s": "bench wall time (s)",
}


def number(value: float | None) -> str:
    """Three significant digits, no exponent for everyday magnitudes; '—' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    digits = max(0, 2 - math.floor(math.log10(magnitude)))
    return f"{value:.{digits}f}"


def write_report(
    results: list[Result], facts: dict[str, Any], scale: Scale, folder: Path, command: str
) -> tuple[Path, Path]:
    """Write both files into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / REPORT_JSON
    json_path.write_text(json.dumps([r.as_json() for r in results], indent=1) + "\n")
    md_path = folder / REPORT_MD
    md_path.write_text(_markdown(results, facts, scale, command))
    return json_path, md_path


def _markdown(results: list[Result], facts: dict[str, Any], scale: Scale, command: str) -> str:
    met = sum(r.met for r in results)
    not_run = sum(r.value is None for r in results)
    titles = {b.key: f"{b.number}. {b.title}" for b in BENCHMARKS}
    lines = [
        f"# LAYER bench report — `{scale.name}` scale",
        "",
        f"`{command}`: {scale.description}. Every baseline was measured in the same run; on a",
        "shared CPU the absolute times are noise and the **ratios** are the claim. Times are",
        "the fastest of interleaved rounds (medians in the notes); warehouse latencies are",
        "medians.",
        "",
        "## Machine",
        "",
        "| fact | value |",
        "|---|---|",
        *(f"| {_FACT_LABELS.get(k, k)} | {v} |" for k, v in facts.items() if v is not None),
        "",
        f"## Targets: {met} of {len(results)} met, {len(results) - met - not_run} missed, "
        f"{not_run} not run",
        "",
        "| benchmark | target | value | unit | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {titles.get(r.benchmark, r.benchmark)} | `{r.name}` | {number(r.value)} | "
            f"{r.unit} | {number(r.baseline)} | {number(r.ratio)} | {r.target} | "
            f"{_met(r)} |"
        )
    lines += ["", "## Notes", ""]
    for r in results:
        lines.append(f"- **`{r.name}`**" + (f" — ratio = {r.ratio_means}" if r.ratio_means else ""))
        if r.notes:
            lines.append(f"  {r.notes}")
        if r.profile:
            lines.append(f"  Profile: [{r.profile}]({r.profile})")
    lines += [
        "",
        "## Scale parameters",
        "",
        "| parameter | value |",
        "|---|---|",
        f"| repeats (interleaved rounds) | {scale.repeats} |",
        "| attribution grids (batch sizes tried) | "
        + "; ".join(
            f"{g.label} ({', '.join(map(str, g.batch_sizes))})" for g in scale.attribution_grids
        )
        + " |",
        f"| Integrated Gradients steps | {scale.ig_steps} |",
        "| occlusion band depth (voxels, the platform's ~2-mm bands) | "
        + "; ".join(f"{occlusion_band(g.shape)} at {g.label}" for g in scale.attribution_grids)
        + " |",
        f"| warehouse cohorts (scans) | {', '.join(f'{n:,}' for n in scale.warehouse_scans)} |",
        f"| preprocessing N (and 2N) scans, grid | {scale.preprocess_scans}, "
        f"{scale.preprocess_grid} |",
        f"| simulated cohort of benchmarks 2-4 and 8 (scans) | {scale.cohort_scans} |",
        f"| training grid, samples/epoch, timed epochs | {'x'.join(map(str, scale.training_shape))}"
        f", {scale.training_samples}, {scale.training_epochs} |",
        "",
    ]
    return "\n".join(lines)


def _met(r: Result) -> str:
    if r.met:
        return "yes"
    return "**not run**" if r.value is None else "**no**"


def publish(source: Path, target: Path) -> None:
    """Copy the report and its profiles to ``target`` (the committed latest copy)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (REPORT_JSON, REPORT_MD):
        shutil.copyfile(source / name, target / name)
    shutil.rmtree(target / PROFILES, ignore_errors=True)
    if (source / PROFILES).is_dir():
        shutil.copytree(source / PROFILES, target / PROFILES)
