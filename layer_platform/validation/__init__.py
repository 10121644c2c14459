"""Validation matrices: simulated cohorts with planted drivers, run through the real assets, and
what the platform concluded against what was planted (``layer-platform validate``)."""

from layer_platform.validation.matrix import Matrix, Scenario, Settings, load_matrix
from layer_platform.validation.outcome import outcome_rows, rates
from layer_platform.validation.report import render

__all__ = ["Matrix", "Scenario", "Settings", "load_matrix", "outcome_rows", "rates", "render"]
