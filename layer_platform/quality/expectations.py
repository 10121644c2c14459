"""Great Expectations 1.x suites for the warehouse tables, run in an ephemeral context.

``dagster-ge`` pins GX < 1.0, so the platform calls GX 1.x directly and turns each validation
into plain outcomes that the Dagster layer reports as asset checks. GX is imported on first use
(``_gx_expectations``): it takes about 2 s, which only the runs that validate should pay, not
every process that loads the definitions (code servers, the daemon, each launched run).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

from layer_platform.labels import PAIN_LABELS
from layer_platform.saliency_names import LAYER_VALUE_METHODS
from layer_platform.warehouse.schema import TABLES

if TYPE_CHECKING:
    import great_expectations as gx
    import great_expectations.expectations as gxe


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

    def describe_failures(self) -> str:
        """One line per failed expectation, e.g. for a log line or an assertion message."""
        return "\n".join(
            f"{self.suite}: {o.expectation}"
            f"{f'({o.column})' if o.column else ''} failed, observed {o.observed}"
            for o in self.failures
        )

    def markdown(self) -> str:
        lines = ["| expectation | column | ok | observed |", "|---|---|---|---|"]
        lines += [
            f"| {o.expectation} | {o.column or ''} | {'✅' if o.success else '❌'} | {o.observed} |"
            for o in self.outcomes
        ]
        return "\n".join(lines)


@cache
def _gx_expectations() -> ModuleType:
    """``great_expectations.expectations``, GX imported on first use (its logger raised to
    WARNING first: GX logs, at INFO, the closures it skips at import time)."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations.expectations as expectations

    return expectations


@cache
def _context() -> gx.data_context.AbstractDataContext:
    _gx_expectations()  # imports GX with its logger quieted
    from great_expectations import get_context
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = get_context(mode="ephemeral")
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
        column = getattr(expectation, "column", None) or getattr(expectation, "column_list", None)
        outcomes.append(
            ExpectationOutcome(
                expectation=expectation.expectation_type,
                column=", ".join(column) if isinstance(column, list) else column,
                success=bool(result.success),
                observed=_observed(result.result)[:160],
            )
        )
    return SuiteOutcome(suite, all(o.success for o in outcomes), tuple(outcomes))


def _observed(result: dict) -> str:
    """What GX saw: the observed value, or how many values broke the rule and a few of them."""
    if "observed_value" in result:
        return str(result["observed_value"])
    if "unexpected_count" in result:
        examples = result.get("partial_unexpected_list") or []
        shown = f", e.g. {examples[:3]}" if result["unexpected_count"] and examples else ""
        return f"{result['unexpected_count']} unexpected{shown}"
    return ""


def _table_columns(table: str) -> list[str]:
    body = TABLES[table].split("(", 1)[1].rsplit(")", 1)[0]
    return [line.split()[0] for line in body.strip().splitlines() if line.strip()]


def validate_scans(scans: pd.DataFrame) -> list[SuiteOutcome]:
    """The manifest's contract: schema, unique ids, allowed labels, one label per subject."""
    expect = _gx_expectations()
    table = validate_frame(
        "scans",
        scans,
        [
            expect.ExpectTableColumnsToMatchSet(
                column_set=_table_columns("scans"), exact_match=True
            ),
            expect.ExpectColumnValuesToNotBeNull(column="scan_id"),
            expect.ExpectColumnValuesToBeUnique(column="scan_id"),
            expect.ExpectColumnValuesToNotBeNull(column="subject_id"),
            expect.ExpectColumnValuesToBeInSet(column="label", value_set=list(PAIN_LABELS)),
            *(
                expect.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True)
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
        [expect.ExpectColumnValuesToBeBetween(column="n_labels", min_value=1, max_value=1)],
    )
    return [table, subjects]


def _between(columns: Sequence[str], low: float, high: float) -> list[gxe.Expectation]:
    """Values in [low, high]; nulls (and NaN) are left to the not-null expectations."""
    expect = _gx_expectations()
    return [
        expect.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)
        for column in columns
    ]


#: No tissue layer of a lower back is a metre thick: the bound that makes "finite" testable.
MAX_THICKNESS_MM = 1000.0


def validate_segmentation_qc(qc: pd.DataFrame, segmentations: pd.DataFrame) -> list[SuiteOutcome]:
    """The segmentation tables' contract (``segmentation_qc`` per scan × layer, ``segmentations``
    per scan): Dice in [0, 1] or null, finite non-negative thickness and volume, order fraction
    in [0, 1], one row per scan × layer and one summary row per scan."""
    expect = _gx_expectations()
    per_layer = validate_frame(
        "segmentation_qc",
        qc,
        [
            expect.ExpectTableColumnsToMatchSet(
                column_set=_table_columns("segmentation_qc"), exact_match=True
            ),
            expect.ExpectColumnValuesToNotBeNull(column="scan_id"),
            expect.ExpectCompoundColumnsToBeUnique(column_list=["scan_id", "layer_index"]),
            expect.ExpectColumnValuesToBeBetween(column="layer_index", min_value=1, max_value=6),
            *_between(["dice"], 0.0, 1.0),
            *_between(["thickness_mean_mm", "thickness_sd_mm"], 0.0, MAX_THICKNESS_MM),
            *_between(["volume_ml"], 0.0, 1e6),
            expect.ExpectColumnValuesToBeBetween(column="n_voxels", min_value=0),
        ],
    )
    per_scan = validate_frame(
        "segmentations",
        segmentations,
        [
            expect.ExpectColumnValuesToNotBeNull(column="scan_id"),
            expect.ExpectColumnValuesToBeUnique(column="scan_id"),
            expect.ExpectColumnValuesToNotBeNull(column="model_version"),
            *_between(["order_ok_fraction", "raw_order_ok_fraction"], 0.0, 1.0),
            expect.ExpectColumnValuesToBeInSet(
                column="segmentation_source", value_set=["reference", "model"]
            ),
        ],
    )
    return [per_layer, per_scan]


#: Methods whose ``saliency_share`` is not a partition of one map (one number per layer: a
#: layer ablation's drops, a layer Shapley value): exempt from "shares sum to 1".
UNNORMALIZED_METHODS: tuple[str, ...] = LAYER_VALUE_METHODS
SALIENCY_KEY = ["scan_id", "input_mode", "method", "layer", "model_version"]


#: ``layer_saliency`` columns that are fractions or [0, 1]-scaled means.
_UNIT_COLUMNS = (
    "saliency_share",
    "volume_fraction",
    "mean_saliency",
    "swe_coverage",
    "mean_saliency_eroded",
    "mean_saliency_dilated",
)


def validate_layer_saliency(
    frame: pd.DataFrame,
    *,
    share_tolerance: float = 1e-6,
    unnormalized_methods: Collection[str] = UNNORMALIZED_METHODS,
) -> list[SuiteOutcome]:
    """The ``layer_saliency`` contract, for the rows an asset is about to write (or wrote).

    Checks: the table's columns; ``model_version`` (and the key columns) present; one row per
    scan × input_mode × method × layer × model_version; ``saliency_share``, ``volume_fraction``,
    ``mean_saliency`` (also eroded and dilated) and ``swe_coverage`` in [0, 1] (nulls allowed
    except for ``volume_fraction``); and, per scan × input_mode × method × model_version of an
    attribution method, shares summing to 1 within ``share_tolerance`` (a map that is zero in
    tissue has all-null shares and is exempt; a layer without a measured voxel has a null
    share).

    Returns two outcomes, ``layer_saliency`` (row-level) and ``layer_saliency_shares`` (per
    map): report each as an asset check's metadata (``outcome.markdown()``).
    """
    expect = _gx_expectations()
    rows = validate_frame(
        "layer_saliency",
        frame,
        [
            expect.ExpectTableColumnsToMatchSet(
                column_set=_table_columns("layer_saliency"), exact_match=True
            ),
            *(expect.ExpectColumnValuesToNotBeNull(column=column) for column in SALIENCY_KEY),
            expect.ExpectCompoundColumnsToBeUnique(column_list=SALIENCY_KEY),
            expect.ExpectColumnValuesToNotBeNull(column="volume_fraction"),
            *_between(_UNIT_COLUMNS, 0.0, 1.0),
        ],
    )
    attributed = frame[~frame["method"].isin(list(unnormalized_methods))]
    maps = (
        attributed.groupby(["scan_id", "input_mode", "method", "model_version"], dropna=False)
        .agg(share_sum=("saliency_share", "sum"), n_shares=("saliency_share", "count"))
        .reset_index()
    )
    # All-null shares (a zero map) sum to 0 in pandas: leave them out as null instead.
    maps["share_sum"] = maps["share_sum"].where(maps["n_shares"] > 0)
    shares = validate_frame(
        "layer_saliency_shares",
        maps,
        _between(["share_sum"], 1.0 - share_tolerance, 1.0 + share_tolerance),
    )
    return [rows, shares]
