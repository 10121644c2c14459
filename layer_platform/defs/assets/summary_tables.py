"""The warehouse tables the ``saliency_summary`` step writes: each table is its own asset.

One step computes and writes them in one transaction (they never describe two different runs);
naming them here, apart from the step, lets the automation sensor and the jobs select them
without importing the step.
"""

from layer_platform.statistics import SUMMARY_TABLES

#: The ranking and its verdict: the table the checks of the summary qualify.
RANKING = "layer_ranking"
#: Where the planted drivers landed in ``layer_ranking`` (simulated cohorts only).
RECOVERY = "driver_recovery"
#: The model-randomization sanity check of each champion (computed once per champion).
RANDOMIZATION = "randomization_checks"
#: Each method's layer-deletion faithfulness on the held-out scans (shown beside the ranking).
FAITHFULNESS = "method_faithfulness"
#: Every table asset of the step.
SUMMARY_ASSETS: tuple[str, ...] = (*SUMMARY_TABLES, RECOVERY, RANDOMIZATION, FAITHFULNESS)
