"""The platform's Definitions with tiny training and attribution settings, for end-to-end tests.

Same assets, automation conditions, sensors and schedule as ``layer_platform.definitions``;
only the resources shrink (1-epoch segmenter, 2-fold 1-epoch classifiers whose first version
always becomes champion, 2-step IG), so a tiny cohort goes through in seconds. A temporary
workspace file points ``dagster dev`` at this module (``defs``, built from the environment's
``LAYER_HOME``).
"""

from __future__ import annotations

import dagster as dg

from layer_platform.defs.definitions import build_definitions
from layer_platform.defs.resources import ClassifierResource, SegmenterResource
from layer_platform.defs.saliency_resource import SaliencyResource
from layer_platform.orchestration.pipeline import run_platform
from layer_platform.orchestration.runner import open_instance, run_job
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, simulate_cohort
from layer_platform.warehouse.store import Warehouse

#: 6 subjects with seed 6: three of each label, enough for a held-out pair and 2 folds.
COHORT = SimulationConfig(n_subjects=6, seed=6, annotated_fraction=1.0)
#: The one input mode trained (the others have no champion, so saliency skips them).
TRAINED_MODE = "bmode"

TINY_RESOURCES = {
    "segmenter": SegmenterResource(epochs=1),
    "classifier": ClassifierResource(
        n_folds=2,
        test_fraction=0.25,
        # a salt whose hash split gives both labels a test subject and a subject in each fold
        split_seed=15,
        min_epochs=1,
        max_epochs=1,
        patience=1,
        # below any AUC: a retrain with no champion always promotes (deterministic tests)
        promotion_floor=-1.0,
    ),
    "saliency": SaliencyResource.smoke(),
}


def tiny_definitions(paths: LayerPaths | None = None) -> dg.Definitions:
    base = build_definitions(paths=paths)
    return dg.Definitions(
        assets=base.assets,
        asset_checks=base.asset_checks,
        jobs=base.jobs,
        sensors=base.sensors,
        schedules=base.schedules,
        resources={**base.resources, **TINY_RESOURCES},
    )


def materialize_tiny_cohort(paths: LayerPaths) -> dg.Definitions:
    """Simulate ``COHORT`` and take it through every asset (~75 s on two cores); returns the
    tiny Definitions used."""
    simulate_cohort(COHORT, paths.landing)
    defs = tiny_definitions(paths)
    reports = run_platform(paths, defs=defs, until="segment_scans")
    assert not any(r.failed for r in reports), [r.job for r in reports if r.failed]
    instance = open_instance(paths)
    keys = sorted(Warehouse(paths.warehouse).query("SELECT scan_id FROM scans")["scan_id"])
    for job, partitions in (
        ("train_classifiers", [TRAINED_MODE]),
        ("compute_saliency", keys),
        ("summarize_saliency", None),
    ):
        assert not run_job(defs, instance, job, partition_keys=partitions).failed, job
    return defs


defs = tiny_definitions()
