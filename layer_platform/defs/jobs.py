"""Jobs: one per stage boundary, so each per-scan stage runs as one batched run.

The named jobs keep Dagster's default executor (a process per step, or ``in_process`` by run
config); runs of the implicit asset job (automation, backfills, "Materialize" in the UI) take
the Definitions' in-process executor (see ``definitions.py``).
"""

import dagster as dg

from layer_platform.defs.assets.summary_tables import SUMMARY_ASSETS
from layer_platform.orchestration.dagster_internals import UnresolvedAssetJobDefinition

#: Dagster's default executor, named so the Definitions-level default does not replace it.
EXECUTOR = dg.multi_or_in_process_executor
#: Run config selecting one process for the whole run (sensor requests use it).
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def _stage_job(
    name: str, assets: tuple[str, ...], description: str
) -> UnresolvedAssetJobDefinition:
    """A job over ``assets`` on ``EXECUTOR``."""
    return dg.define_asset_job(
        name,
        executor_def=EXECUTOR,
        selection=dg.AssetSelection.assets(*assets),
        description=description,
    )


ingest_job = _stage_job(
    "ingest",
    ("cohort_manifest",),
    "Inspect new/changed landing folders, quarantine bad ones, register partitions.",
)

preprocess_job = _stage_job(
    "preprocess_scans",
    ("preprocessed_volume",),
    "Preprocess a batch of scans in one run (single-run backfill policy).",
)

train_classifiers_job = _stage_job(
    "train_classifiers",
    ("cohort_split", "pain_classifier"),
    "Split subjects, then cross-validate and register a classifier per input mode.",
)

train_segmenter_job = _stage_job(
    "train_segmenter",
    ("segmentation_model",),
    "Train, track and register the six-layer segmenter on the annotated scans.",
)

segment_scans_job = _stage_job(
    "segment_scans",
    ("layer_segmentation",),
    "Segment a batch of scans with the champion segmenter; QC each map.",
)

update_scans_job = _stage_job(
    "update_scans",
    ("preprocessed_volume", "layer_segmentation", "layer_saliency"),
    "New scans that change no model: preprocess, segment and attribute them in one"
    " run (what `layer-platform run` launches for arrivals, as the automation sensor does).",
)

compute_saliency_job = _stage_job(
    "compute_saliency",
    ("layer_saliency",),
    "Attribute a batch of scans with every mode's champion; sum maps inside layers.",
)

summarize_saliency_job = _stage_job(
    "summarize_saliency",
    SUMMARY_ASSETS,
    "Cohort statistics of the champion rows: CIs, ranking, tests, driver recovery, the"
    " randomization check (one step, one asset per warehouse table).",
)
