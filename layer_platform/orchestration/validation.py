"""``layer-platform validate``: each cohort of a validation matrix simulated and taken through
the real assets in its own ``LAYER_HOME``, and what the platform concluded stored beside them.

Resumable: a cohort whose rows are stored with its current fingerprint is not run again; a
cohort interrupted half-way runs again from an empty home, so that what a validation stores is
always what a fresh cohort gives (a resumed one would meet a registry and a champion from the
attempt before). One cohort that fails is reported and the others go on.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd
from tqdm import tqdm

from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.resources import (
    ClassifierResource,
    PreprocessingResource,
    SegmenterResource,
)
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.orchestration.pipeline import run_platform
from layer_platform.orchestration.runner import StageReport, open_instance, run_job
from layer_platform.settings import LayerPaths
from layer_platform.simulation import simulate_cohort
from layer_platform.validation import Matrix, Scenario, outcome_rows
from layer_platform.validation.feasibility import split_refusal
from layer_platform.warehouse.store import Warehouse

log = logging.getLogger(__name__)

#: The matrix's results file, in its output folder (one ``LAYER_HOME`` per cohort beside it).
RESULTS_FILE = "validation.duckdb"
#: Written into a cohort's home: the fingerprint it was simulated for.
MARKER = "validation.json"
#: Every first model becomes champion, also a chance-level one: the verdict's gates, not the
#: promotion floor, must be what keeps a null cohort from a finding.
PROMOTION_FLOOR = 0.0


@dataclass
class MatrixRun:
    """What a ``run_matrix`` call did: the matrix's stored rows and the cohorts it ran,
    skipped (stored and current), read again from their homes (``reread``), left unrun
    (``pending``: ``stored_only``) or could not finish (name -> reason)."""

    rows: pd.DataFrame
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reread: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def matrix_definitions(
    paths: LayerPaths,
    matrix: Matrix,
    scenario: Scenario,
    matching: str | None = None,
    env: Mapping[str, str] | None = None,
) -> dg.Definitions:
    """The platform's definitions (``env``: the environment, as ``build_definitions`` reads it:
    the preset's grid and its occlusion bands) with the matrix's training and attribution
    settings, the cohort reference entering with ``matching`` (default: the matrix's first).
    Another matching is another attribution setting, so the rows of the last one are stale and
    recomputed."""
    settings = matrix.settings
    training = (
        ("min_epochs", settings.min_epochs),
        ("max_epochs", settings.max_epochs),
        ("modality_dropout", settings.modality_dropout),
    )
    classifier = {k: v for k, v in training if v is not None}
    if "max_epochs" in classifier:
        classifier["patience"] = min(classifier["max_epochs"], ClassifierResource().patience)
    segmenter = {"epochs": settings.segmenter_epochs} if settings.segmenter_epochs else {}
    base = build_definitions(env, paths=paths)
    saliency = SaliencyResource.smoke() if settings.smoke else base.resources["saliency"]
    saliency = SaliencyResource(
        **{
            **saliency.model_dump(),
            "methods": list(settings.methods),
            "reference_matching": matching or settings.reference_matching[0],
        }
    ).validated()
    grid = base.resources["preprocessing"]
    if settings.smoke:
        grid = PreprocessingResource(**{**grid.model_dump(), "preset": "smoke"})
    return dg.Definitions(
        assets=base.assets,
        asset_checks=base.asset_checks,
        jobs=base.jobs,
        resources={
            **base.resources,
            "classifier": ClassifierResource(
                n_folds=scenario.folds,
                split_seed=scenario.split_seed,
                promotion_floor=PROMOTION_FLOOR,
                **classifier,
            ),
            "segmenter": SegmenterResource(**segmenter),
            "saliency": saliency,
            "preprocessing": grid,
        },
    )


def _stored(results: Warehouse, matrix: Matrix) -> pd.DataFrame:
    if not results.path.exists() or not results.table_exists("validation_matrix"):
        return pd.DataFrame(columns=["scenario", "fingerprint"])
    return results.query("SELECT * FROM validation_matrix WHERE matrix = ?", [matrix.name])


def _cohort_home(out: Path, matrix: Matrix, scenario: Scenario) -> LayerPaths:
    """The cohort's ``LAYER_HOME``, emptied first: a cohort runs only when it has no current
    stored rows, so anything already there is from other settings or from an attempt that did
    not finish (a partly trained registry, a half-written warehouse), and resuming on it could
    give another result than a fresh run. The marker records the settings it runs under."""
    home = out / scenario.name
    if home.exists():
        shutil.rmtree(home)
    paths = LayerPaths.under(home).ensure()
    (home / MARKER).write_text(json.dumps({"fingerprint": matrix.fingerprint(scenario)}))
    return paths


def run_scenario(out: Path, matrix: Matrix, scenario: Scenario) -> pd.DataFrame:
    """Simulate, run every stage in an empty home, and read back the cohort's
    ``validation_matrix`` rows.

    Raises:
        RuntimeError: the split would be refused (before anything runs, naming a salt that
            works), a stage of the platform failed (named), or nothing was ranked.
    """
    if problem := split_refusal(scenario, ClassifierResource().test_fraction):
        raise RuntimeError(problem)
    started = time.monotonic()
    paths = _cohort_home(out, matrix, scenario)
    simulate_cohort(scenario.simulation(), paths.landing)
    warehouse = Warehouse(paths.warehouse)
    first, *others = matrix.settings.reference_matching
    _check(run_platform(paths, defs=matrix_definitions(paths, matrix, scenario)))
    found = [_outcome(matrix, scenario, warehouse, started, first)]
    found += [explain_again(paths, matrix, scenario, matching) for matching in others]
    return pd.concat(found, ignore_index=True)


def explain_again(
    paths: LayerPaths, matrix: Matrix, scenario: Scenario, matching: str
) -> pd.DataFrame:
    """The cohort's trained models explained and summarized again with another reference
    matching (its saliency rows are stale for it), and the rows that summary gives."""
    started = time.monotonic()
    warehouse = Warehouse(paths.warehouse)
    defs = matrix_definitions(paths, matrix, scenario, matching)
    instance = open_instance(paths)
    keys = list(warehouse.query("SELECT scan_id FROM scans ORDER BY scan_id")["scan_id"])
    _check([run_job(defs, instance, "compute_saliency", partition_keys=keys)])
    _check([run_job(defs, instance, "summarize_saliency")])
    return _outcome(matrix, scenario, warehouse, started, matching)


def _check(reports: list[StageReport]) -> None:
    failed = [report.job for report in reports if report.failed]
    if failed:
        raise RuntimeError(f"stage {', '.join(failed)} failed")


def _outcome(
    matrix: Matrix, scenario: Scenario, warehouse: Warehouse, started: float, matching: str
) -> pd.DataFrame:
    seconds = time.monotonic() - started
    rows = outcome_rows(matrix, scenario, warehouse, seconds=seconds, reference_matching=matching)
    if rows.empty:
        raise RuntimeError("the run ended without a layer_ranking (no champion was explained)")
    return rows


def reread_scenario(out: Path, matrix: Matrix, scenario: Scenario, seconds: float) -> pd.DataFrame:
    """A stored cohort's rows read again from its ``LAYER_HOME``, as they would have been stored
    without a since-fixed error in reading them; ``seconds``: what its run took. Only for one
    reference matching: a cohort's warehouse keeps the last matching's summary alone."""
    if len(matrix.settings.reference_matching) > 1:
        raise ValueError("re-reading needs a matrix with one reference_matching")
    warehouse = Warehouse(LayerPaths.under(out / scenario.name).warehouse)
    warehouse.ensure_schema()  # a home from an older version gains the newer columns (NULL)
    matching = matrix.settings.reference_matching[0]
    return outcome_rows(matrix, scenario, warehouse, seconds=seconds, reference_matching=matching)


def run_matrix(
    out: Path,
    matrix: Matrix,
    *,
    only: Sequence[str] = (),
    reread: bool = False,
    stored_only: bool = False,
) -> MatrixRun:
    """Run the matrix's cohorts (``only``: those names) that have no current stored rows;
    with ``reread``, read the stored ones again from their homes (``reread_scenario``); with
    ``stored_only``, run none (the page of a matrix stopped part-way)."""
    unknown = set(only) - {s.name for s in matrix.scenarios}
    if unknown:
        raise ValueError(f"no scenario named {sorted(unknown)} in {matrix.name}")
    out.mkdir(parents=True, exist_ok=True)
    results = Warehouse(out / RESULTS_FILE)
    stored = _stored(results, matrix)
    current = set(zip(stored["scenario"], stored["fingerprint"], strict=True))
    chosen = [s for s in matrix.scenarios if not only or s.name in only]
    outcome = MatrixRun(stored)
    for scenario in tqdm(chosen, desc=f"validate {matrix.name}", unit="cohort"):
        stored_now = (scenario.name, matrix.fingerprint(scenario)) in current
        if stored_now and not reread:
            outcome.skipped.append(scenario.name)
            continue
        if not stored_now and stored_only:
            outcome.pending.append(scenario.name)
            continue
        log.info("validation cohort %s (seed %d) starts", scenario.name, scenario.seed)
        try:
            if stored_now:
                seconds = stored.loc[stored["scenario"] == scenario.name, "seconds"].iloc[0]
                rows = reread_scenario(out, matrix, scenario, float(seconds))
            else:
                rows = run_scenario(out, matrix, scenario)
        except Exception as exc:  # one cohort never stops the others
            outcome.failed[scenario.name] = f"{type(exc).__name__}: {exc}"
            log.exception("validation cohort %s failed", scenario.name)
            continue
        results.replace(
            "validation_matrix",
            rows,
            key="scenario",
            keys=[scenario.name],
            scope={"matrix": matrix.name},
        )
        (outcome.reread if stored_now else outcome.ran).append(scenario.name)
    outcome.rows = _stored(results, matrix)
    return outcome
