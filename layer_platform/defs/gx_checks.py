"""Great Expectations suites shown as Dagster asset checks: one check, every suite's table."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from layer_platform.quality.expectations import SuiteOutcome


def gx_check_result(check_name: str, suites: Sequence[SuiteOutcome]) -> dg.AssetCheckResult:
    """Passed when every suite passed; each suite's expectation table is metadata in the UI.

    The suites run on the rows as they landed in the warehouse, not as they were meant to be,
    so a duplicated or lost row fails here (severity ERROR: blocking checks stop downstream).
    """
    failures = "\n".join(s.describe_failures() for s in suites if not s.success)
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=all(s.success for s in suites),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            **{s.suite: dg.MetadataValue.md(s.markdown()) for s in suites},
            "failures": failures or "none",
        },
    )
