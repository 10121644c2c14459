"""Jobs: one per stage boundary, so each per-scan stage runs as one batched run.

The named jobs keep Dagster's default executor (a process per step, or ``in_process`` by run
config); runs of the implicit asset job (automation, backfills, "Materialize" in the UI) take
the Definitions' in-process executor (see ``definitions.py``).
"""

import dagster as dg

from layer_platform.defs.partitions import scan_partitions

#: Dagster's default executor, named so the Definitions-level default does not replace it.
EXECUTOR = dg.multi_or_in_process_executor
#: Run config selecting one process for the whole run (sensor requests use it).
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}

ingest_job = dg.define_asset_job(
    "ingest",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.assets("cohort_manifest"),
    description="Inspect new/changed landing folders, quarantine bad ones, register partitions.",
)

preprocess_job = dg.define_asset_job(
    "preprocess_scans",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.assets("preprocessed_volume"),
    partitions_def=scan_partitions,
    description="Preprocess a batch of scans in one run (single-run backfill policy).",
)

train_classifiers_job = dg.define_asset_job(
    "train_classifiers",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.assets("cohort_split", "pain_classifier"),
    description="Split subjects, then cross-validate and register a classifier per input mode.",
)

train_segmenter_job = dg.define_asset_job(
    "train_segmenter",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.assets("segmentation_model"),
    description="Train, track and register the six-layer segmenter on the annotated scans.",
)

segment_scans_job = dg.define_asset_job(
    "segment_scans",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.assets("layer_segmentation"),
    partitions_def=scan_partitions,
    description="Segment a batch of scans with the champion segmenter; QC each map.",
)

update_scans_job = dg.define_asset_job(
    "update_scans",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.assets(
        "preprocessed_volume", "layer_segmentation", "layer_saliency"
    ),
    partitions_def=scan_partitions,
    description="New scans that change no model: preprocess, segment and attribute them in one"
    " run (what `layer-platform run` launches for arrivals, as the automation sensor does).",
)

compute_saliency_job = dg.define_asset_job(
    "compute_saliency",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.assets("layer_saliency"),
    partitions_def=scan_partitions,
    description="Attribute a batch of scans with every mode's champion; sum maps inside layers.",
)

summarize_saliency_job = dg.define_asset_job(
    "summarize_saliency",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.assets("layer_saliency_summary"),
    description="Cohort statistics of the champion rows: CIs, ranking, tests, driver recovery.",
)
