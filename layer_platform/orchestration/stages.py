"""The stage order of ``layer-platform run`` (kept import-light for the CLI's ``--help``)."""

STAGES: tuple[str, ...] = (
    "ingest",
    "preprocess_scans",
    "train_segmenter",
    "segment_scans",
    "train_classifiers",
    "compute_saliency",
    "summarize_saliency",
)
