"""What the reliability tests run in child processes, on real files under a temporary folder.

``python -m layer_platform_tests.reliability.worker pipeline HOME``
    ``layer-platform run`` from an empty instance: every stage through ``run_platform``, with
    the tiny settings below (the CLI's own resources would train for many minutes).
``python -m layer_platform_tests.reliability.worker {preprocess,segment,saliency} HOME``
    that per-scan job over the scans ``run_platform`` finds pending, in one batched run (the
    batch commits each scan as it finishes, so a ``kill -9`` falls between or inside scans).
``python -m layer_platform_tests.reliability.worker volumes DIR``
    rewrite two volumes (``.nii.gz`` and ``.nii``) with ``write_volume`` forever, each filled
    with its generation number (one more than what the files hold); prints each generation.
``python -m layer_platform_tests.reliability.worker rows FILE``
    replace two scopes of ``quarantine`` rows in one ``Warehouse.replace_all`` forever, every
    row carrying its generation number (one more than the table's); prints each commit.

The platform imports (Dagster above all) happen inside the commands that need them, so the
``volumes`` and ``rows`` children start in a second. Nothing here is imported by the product.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import dagster as dg

    from layer_platform.settings import LayerPaths

#: Worker commands that run one per-scan job over its pending scans.
STAGE_JOBS = {
    "preprocess": "preprocess_scans",
    "segment": "segment_scans",
    "saliency": "compute_saliency",
}
#: Volume rewritten by ``volumes``: ~2 MB, so a write (gzip above all) takes a while.
VOLUME_SHAPE = (64, 128, 64)
VOLUME_NAMES = ("map.nii.gz", "volume.nii")
#: Rows per scope rewritten by ``rows`` (two scopes: ``a`` and ``b`` folders).
ROWS_PER_SCOPE = 20_000


def tiny_definitions(paths: LayerPaths) -> dg.Definitions:
    """The platform's definitions with the test suite's tiny training and saliency settings.

    Two folds of one epoch; every first model becomes champion (these tests need champions,
    not good ones: a chance-level model must not leave the saliency stages without work).
    """
    import dagster as dg

    from layer_platform.defs.definitions import build_definitions
    from layer_platform.defs.resources import ClassifierResource, SegmenterResource
    from layer_platform_tests.saliency.test_materialization import TINY

    base = build_definitions(paths=paths)
    classifier = ClassifierResource(
        n_folds=2, test_fraction=0.25, min_epochs=1, max_epochs=1, patience=1, promotion_floor=-1
    )
    return dg.Definitions(
        assets=base.assets,
        jobs=base.jobs,
        resources={
            **base.resources,
            "segmenter": SegmenterResource(epochs=1),
            "classifier": classifier,
            "saliency": TINY,
        },
    )


def champion_versions(paths: LayerPaths) -> dict[str, str]:
    """Input mode → champion version, as ``run_platform`` reads them."""
    from layer_platform.classification.modes import INPUT_MODES
    from layer_platform.tracking.mlflow_registry import Tracking, champion
    from layer_platform.tracking.names import registered_name

    tracking = Tracking.for_paths(paths)
    return {
        mode: str(found.version)
        for mode in INPUT_MODES
        if (found := champion(tracking, registered_name(mode))) is not None
    }


def run_pipeline(paths: LayerPaths) -> int:
    from layer_platform.orchestration.pipeline import run_platform
    from layer_platform.timestamps import utc_now
    from layer_platform.warehouse.status import quarantined_since

    started = utc_now()
    reports = run_platform(paths, defs=tiny_definitions(paths))
    for report in reports:
        print(f"{report.job}: runs={len(report.runs)} failed={report.failed}", flush=True)
    for line in quarantined_since(paths, started):  # as `layer-platform run` prints them
        print(line, flush=True)
    return 1 if any(report.failed for report in reports) else 0


def pending_scans(paths: LayerPaths, job: str) -> list[str]:
    """The scans ``run_platform`` would send to ``job`` (a per-scan job) now."""
    from layer_platform.tracking.mlflow_registry import Tracking, champion
    from layer_platform.tracking.names import SEGMENTER
    from layer_platform.warehouse.pending import (
        PENDING_PREPROCESSING,
        PENDING_SEGMENTATION,
        pending_saliency,
    )
    from layer_platform.warehouse.store import Warehouse
    from layer_platform_tests.saliency.test_materialization import TINY

    warehouse = Warehouse(paths.warehouse)
    if job == "preprocess_scans":
        return list(warehouse.query(PENDING_PREPROCESSING)["scan_id"])
    if job == "segment_scans":
        version = champion(Tracking.for_paths(paths), SEGMENTER).version
        return list(warehouse.query(PENDING_SEGMENTATION, [version])["scan_id"])
    return pending_saliency(warehouse, champion_versions(paths), TINY.attribution_settings())


def run_stage(paths: LayerPaths, job: str) -> int:
    """One per-scan job over its pending scans, in one batched run (as ``run_platform``)."""
    from layer_platform.orchestration.runner import open_instance, run_job

    keys = pending_scans(paths, job)
    print(f"{job} pending for {len(keys)} scans", flush=True)
    defs = tiny_definitions(paths)
    report = run_job(defs, open_instance(paths), job, partition_keys=keys)
    print(f"{job}: runs={len(report.runs)} failed={report.failed}", flush=True)
    return 1 if report.failed else 0


def rewrite_volumes(folder: Path) -> int:
    from layer_platform.io import Volume, read_volume, write_volume

    first = folder / VOLUME_NAMES[0]
    start = int(read_volume(first).array.flat[0]) + 1 if first.exists() else 0
    for generation in itertools.count(start):
        volume = Volume(np.full(VOLUME_SHAPE, generation, np.float32), (1.0, 0.25, 1.5))
        for name in VOLUME_NAMES:
            write_volume(folder / name, volume)
        print(generation, flush=True)
    return 0


def quarantine_rows(scope: str, generation: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "folder": [f"{scope}{i:06d}" for i in range(ROWS_PER_SCOPE)],
            "scan_id": scope,
            "reason": f"generation {generation:06d}",
            "detected_at": dt.datetime(2026, 1, 1),
        }
    )


def rewrite_rows(path: Path) -> int:
    from layer_platform.warehouse.store import Replacement, Warehouse

    warehouse = Warehouse(path)
    start = 0
    if warehouse.table_exists("quarantine"):
        last = warehouse.query("SELECT max(reason) AS r FROM quarantine")["r"].iloc[0]
        start = int(last.split()[-1]) + 1
    for generation in itertools.count(start):
        warehouse.replace_all(
            [
                Replacement(
                    "quarantine", quarantine_rows(scope, generation), key="scan_id", keys=[scope]
                )
                for scope in ("a", "b")
            ]
        )
        print(generation, flush=True)
    return 0


def main(argv: list[str]) -> int:
    command, where = argv
    if command == "volumes":
        return rewrite_volumes(Path(where))
    if command == "rows":
        return rewrite_rows(Path(where))
    from layer_platform.settings import LayerPaths

    paths = LayerPaths.under(Path(where)).ensure()
    if command == "pipeline":
        return run_pipeline(paths)
    return run_stage(paths, STAGE_JOBS[command])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
