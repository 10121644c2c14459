"""Cohort statistics over per-layer attribution tables (numpy, scipy, pandas only).

Subjects are the unit: scans are averaged per subject before any mean, interval or test.
"""

from layer_platform.statistics.bootstrap import MeanCI, bootstrap_mean_ci, subject_means
from layer_platform.statistics.comparisons import (
    NO_STANDOUT,
    FriedmanResult,
    PairedComparison,
    friedman_layers,
    non_muscle_vs_muscle,
)
from layer_platform.statistics.ranking import (
    SUBGROUPS,
    SUMMARY_TABLES,
    RankingSpec,
    cohort_tables,
    comparison_rows,
    friedman_rows,
    ranking_rows,
    summary_rows,
)
from layer_platform.statistics.recovery import driver_recovery_rows, planted_drivers
from layer_platform.statistics.report import (
    faithfulness_markdown,
    format_ranking,
    markdown_table,
    results_markdown,
)
from layer_platform.statistics.sampling import sample_scans
from layer_platform.statistics.summary import layer_summary, subject_layer_matrix
from layer_platform.statistics.verdicts import TOO_FEW_SUBJECTS, Evidence, Verdict

__all__ = [
    "NO_STANDOUT",
    "SUBGROUPS",
    "SUMMARY_TABLES",
    "TOO_FEW_SUBJECTS",
    "Evidence",
    "FriedmanResult",
    "MeanCI",
    "PairedComparison",
    "RankingSpec",
    "Verdict",
    "bootstrap_mean_ci",
    "cohort_tables",
    "comparison_rows",
    "driver_recovery_rows",
    "faithfulness_markdown",
    "format_ranking",
    "friedman_layers",
    "friedman_rows",
    "layer_summary",
    "markdown_table",
    "non_muscle_vs_muscle",
    "planted_drivers",
    "ranking_rows",
    "results_markdown",
    "sample_scans",
    "subject_layer_matrix",
    "subject_means",
    "summary_rows",
]
