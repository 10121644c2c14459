"""A simulated cohort taken through the platform's own Dagster jobs: the ground of benchmarks
2, 3 and 4 (saliency stage throughput, orchestration overhead, incremental cost).

``materialized(ctx)`` simulates ``Scale.cohort_scans`` scans (every one annotated, so the
saliency stage sees reference segmentations), then runs ``ingest``, ``preprocess_scans``,
``train_segmenter`` (one epoch: its quality is not what is measured) and ``segment_scans``
through a temporary Dagster instance, exactly as ``layer-platform run`` does, and registers one
untrained classifier per input mode as champion, built as the defaults build the registered
model (a ``FoldEnsemble`` of one ``SmallCNN3D`` per fold; attribution costs the same whatever
the weights). ``attributed(ctx)`` adds ``compute_saliency`` over every scan. Each
is built once per bench run and shared; every job's wall time and runs are kept
(``Cohort.stage_seconds``, ``Cohort.stage_runs``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np

from bench.core import Context
from bench.data import grid_config
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.modes import INPUT_MODES, n_channels
from layer_platform.classification.network import FoldEnsemble, build_classifier
from layer_platform.classification.splits import SplitScheme
from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.resources import (
    ClassifierResource,
    PreprocessingResource,
    SegmenterResource,
)
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.imaging.preprocess import PreprocessConfig
from layer_platform.orchestration.runner import open_instance, run_job
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, simulate_cohort
from layer_platform.timestamps import utc_now
from layer_platform.tracking.champion_score import SPLIT_TAG
from layer_platform.tracking.mlflow_registry import (
    DATA_VERSION_TAG,
    Tracking,
    data_version,
    log_torch_model,
    promote,
    tracked_run,
)
from layer_platform.tracking.names import registered_name
from layer_platform.tracking.reference_store import TRAINED_SCANS_ARTIFACT
from layer_platform.warehouse.queries import LABELLED_PREPROCESSED
from layer_platform.warehouse.store import Warehouse

_KEY = "cohort"


@dataclass
class Cohort:
    """The materialized cohort and what building it cost (wall seconds per job)."""

    paths: LayerPaths
    defs: dg.Definitions
    instance: dg.DagsterInstance
    warehouse: Warehouse
    saliency: SaliencyResource
    keys: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_runs: dict[str, int] = field(default_factory=dict)


def saliency_resource(ctx: Context) -> SaliencyResource:
    """The platform's settings for the cohort's grid (``SaliencyResource.for_grid``: its
    occlusion bands), on the bench's thread count; minimal work at the tiny scale."""
    if ctx.scale.name == "tiny":
        return SaliencyResource.smoke(ctx.threads)
    grid = SaliencyResource.for_grid(PreprocessConfig.preset(preset(ctx)))
    return SaliencyResource(**{**grid.model_dump(), "torch_threads": ctx.threads})


def preset(ctx: Context) -> str:
    """The platform's working-grid preset the cohort uses: ``gpu`` at the paper scale."""
    return "gpu" if ctx.scale.preprocess_grid == "gpu" else "cpu"


def landing(ctx: Context) -> Path:
    """The simulated landing zone (simulated once per run)."""
    folder = ctx.work_dir / "cohort" / "landing"  # its ground truth lands beside it
    if not folder.is_dir():
        n_subjects = max(1, ctx.scale.cohort_scans // 2)
        config = SimulationConfig(n_subjects=n_subjects, seed=ctx.seed, annotated_fraction=1.0)
        simulate_cohort(config, folder)
    return folder


def definitions(paths: LayerPaths, ctx: Context, saliency: SaliencyResource) -> dg.Definitions:
    """The platform's definitions with bench resources: no preview PNGs while preprocessing (a
    plain loop would not draw them either), a one-epoch segmenter, ``saliency``."""
    base = build_definitions(paths=paths)
    return dg.Definitions(
        assets=base.assets,
        jobs=base.jobs,
        resources={
            **base.resources,
            "preprocessing": PreprocessingResource(preset=preset(ctx), preview_limit=0),
            "segmenter": SegmenterResource(epochs=1),
            "saliency": saliency,
        },
    )


def timed_job(
    cohort: Cohort,
    job: str,
    keys: list[str] | None,
    *,
    record: bool = True,
    defs: dg.Definitions | None = None,
) -> tuple[float, int]:
    """Run ``job`` through the platform's runner (with ``defs`` in place of the cohort's own
    definitions when given); returns (wall seconds, runs launched)."""
    started = time.perf_counter()
    report = run_job(defs or cohort.defs, cohort.instance, job, partition_keys=keys)
    seconds = time.perf_counter() - started
    if report.failed:
        raise RuntimeError(f"bench cohort: job {job!r} failed (runs {report.failed})")
    if record:
        cohort.stage_seconds[job] = seconds
        cohort.stage_runs[job] = len(report.runs)
    return seconds, len(report.runs)


def home(ctx: Context, name: str) -> Cohort:
    """A platform home ``work_dir/name`` over the bench landing zone, ingested (keys set)."""
    paths = LayerPaths.from_env(
        {"LAYER_HOME": str(ctx.work_dir / name), "LAYER_LANDING_DIR": str(landing(ctx))}
    ).ensure()
    saliency = saliency_resource(ctx)
    cohort = Cohort(
        paths=paths,
        defs=definitions(paths, ctx, saliency),
        instance=open_instance(paths),
        warehouse=Warehouse(paths.warehouse),
        saliency=saliency,
    )
    timed_job(cohort, "ingest", None)
    cohort.keys = sorted(cohort.warehouse.query("SELECT scan_id FROM scans")["scan_id"])
    return cohort


def materialized(ctx: Context) -> Cohort:
    """The cohort through segmentation, with a champion per input mode (built once per run)."""
    if _KEY in ctx.shared:
        return ctx.shared[_KEY]
    started = time.perf_counter()
    cohort = home(ctx, "cohort_home")
    timed_job(cohort, "preprocess_scans", cohort.keys)
    timed_job(cohort, "train_segmenter", None)
    timed_job(cohort, "segment_scans", cohort.keys)
    cohort.versions = _register_champions(ctx, cohort)
    ctx.log(
        f"  cohort of {len(cohort.keys)} scans materialized in "
        f"{time.perf_counter() - started:.0f} s"
    )
    ctx.shared[_KEY] = cohort
    return cohort


def reattributing(ctx: Context, cohort: Cohort) -> dg.Definitions:
    """The cohort's definitions with ``keep_current`` off: a re-run of ``compute_saliency``
    attributes every mode anew, as the first run did (with it on, the re-run keeps the rows that
    run wrote and does no model work, so a profile of it shows none)."""
    saliency = cohort.saliency
    return definitions(
        cohort.paths, ctx, type(saliency)(**{**saliency.model_dump(), "keep_current": False})
    )


def attributed(ctx: Context) -> Cohort:
    """``materialized`` with ``compute_saliency`` run over every scan in batched runs (once)."""
    cohort = materialized(ctx)
    if "compute_saliency" not in cohort.stage_seconds:
        timed_job(cohort, "compute_saliency", cohort.keys)
    return cohort


def _register_champions(ctx: Context, cohort: Cohort) -> dict[str, str]:
    """One untrained default classifier per mode, registered and promoted as champion, tagged
    with the labelled scans' data version (so ``layer-platform run`` sees it as current), with
    stored held-out calls for the summary's subgroups."""
    import torch

    tracking = Tracking.for_paths(cohort.paths)
    labelled = cohort.warehouse.query(LABELLED_PREPROCESSED)
    tags = {DATA_VERSION_TAG: data_version(list(labelled["scan_id"]))}
    shape = grid_config(preset(ctx)).target_shape
    now = utc_now()
    config, resource = ClassifierConfig(), ClassifierResource()
    n_folds = resource.n_folds
    # The split a trained champion records: its development scans are explained by the
    # members that held them out, against its frozen reference (docs/explanation/protocol.md).
    split = {SPLIT_TAG: SplitScheme(n_folds, resource.test_fraction, resource.split_seed).tag()}
    versions = {}
    for seed, mode in enumerate(INPUT_MODES):
        torch.manual_seed(ctx.seed + seed)
        members = [build_classifier(config, n_channels(mode)) for _ in range(n_folds)]
        model = FoldEnsemble(members) if config.final_model == "fold_ensemble" else members[0]
        example = np.zeros((1, n_channels(mode), *shape), np.float32)
        name = registered_name(mode)
        with tracked_run(tracking, "layer-classifier", mode, tags=tags):
            mlflow.log_text("\n".join(labelled["scan_id"]), TRAINED_SCANS_ARTIFACT)
            version = str(log_torch_model(model, example, name, split).version)
        promote(tracking, name, version, "bench: untrained champion, for timing only")
        versions[mode] = version
        scope = {"input_mode": mode, "model_version": version}
        calls = [
            {
                "scan_id": scan.scan_id,
                "model_name": name,
                **scope,
                "fold_role": "test",
                "probability": 0.8 if scan.label == "MP" else 0.2,
                "computed_at": now,
            }
            for scan in labelled.itertuples()
        ]
        cohort.warehouse.replace("predictions", calls, key="model_name", keys=[name], scope=scope)
        threshold = {**scope, "model_name": name, "fold": "test", "metric": "threshold"}
        cohort.warehouse.replace(
            "model_metrics",
            [{**threshold, "value": 0.5, "computed_at": now}],
            key="model_name",
            keys=[name],
            scope=scope,
        )
    return versions
