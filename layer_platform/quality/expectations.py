"""Great Expectations 1.x suites for the warehouse tables, run in an ephemeral context.

``dagster-ge`` pins GX < 1.0, so the platform calls GX 1.x directly and turns each validation
into plain outcomes that the Dagster layer reports as asset checks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

# GX logs closures it skips at import time, at INFO: raise its level before importing it.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
import pandas as pd  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402

from layer_platform.labels import PAIN_LABELS  # noqa: E402
from layer_platform.warehouse.schema import TABLES  # noqa: E402


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    observed: str


@dataclass(frozen=True)
class SuiteOutcome:
    """The result of one suite on one frame, ready for an asset check's metadata."""

    suite: str
    success: bool
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def markdown(self) -> str:
        lines = ["| expectation | column | ok | observed |", "|---|---|---|---|"]
        lines += [
            f"| {o.expectation} | {o.column or ''} | {'✅' if o.success else '❌'} | {o.observed} |"
            for o in self.outcomes
        ]
        return "\n".join(lines)


@cache
def _context() -> gx.data_context.AbstractDataContext:
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def validate_frame(
    suite: str, frame: pd.DataFrame, expectations: Sequence[gxe.Expectation]
) -> SuiteOutcome:
    """Validate ``frame`` against ``expectations`` with a pandas batch."""
    context = _context()
    source = context.data_sources.add_or_update_pandas(name=f"layer_{suite}")
    asset = source.add_dataframe_asset(name=suite)
    batch = asset.add_batch_definition_whole_dataframe(f"{suite}_batch").get_batch(
        batch_parameters={"dataframe": frame}
    )
    outcomes = []
    for expectation in expectations:
        result = batch.validate(expectation)
        observed = result.result.get("observed_value", result.result.get("unexpected_count", ""))
        outcomes.append(
            ExpectationOutcome(
                expectation=expectation.expectation_type,
                column=getattr(expectation, "column", None),
                success=bool(result.success),
                observed=str(observed)[:120],
            )
        )
    return SuiteOutcome(suite, all(o.success for o in outcomes), tuple(outcomes))


def _table_columns(table: str) -> list[str]:
    body = TABLES[table].split("(", 1)[1].rsplit(")", 1)[0]
    return [line.split()[0] for line in body.strip().splitlines() if line.strip()]


def validate_scans(scans: pd.DataFrame) -> list[SuiteOutcome]:
    """The manifest's contract: schema, unique ids, allowed labels, one label per subject."""
    table = validate_frame(
        "scans",
        scans,
        [
            gxe.ExpectTableColumnsToMatchSet(column_set=_table_columns("scans"), exact_match=True),
            gxe.ExpectColumnValuesToNotBeNull(column="scan_id"),
            gxe.ExpectColumnValuesToBeUnique(column="scan_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(PAIN_LABELS)),
            *(
                gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True)
                for column in ("spacing_lateral_mm", "spacing_depth_mm", "spacing_sweep_mm")
            ),
        ],
    )
    per_subject = (
        scans.groupby("subject_id", dropna=False)["label"]
        .nunique(dropna=False)
        .rename("n_labels")
        .reset_index()
    )
    subjects = validate_frame(
        "subject_labels",
        per_subject,
        [gxe.ExpectColumnValuesToBeBetween(column="n_labels", min_value=1, max_value=1)],
    )
    return [table, subjects]
