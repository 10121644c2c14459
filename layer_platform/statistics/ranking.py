"""Cohort tables over the per-scan ``layer_saliency`` rows: summary, ranking, tests.

Input is a pandas frame of ``layer_saliency`` rows (one per scan, input mode, method and layer)
with at least ``scan_id``, ``subject_id``, ``label``, ``input_mode``, ``method``, ``layer`` and
the value columns; an optional boolean ``correct`` (the classifier's call agrees with the label)
defines the ``MP_correct`` subgroup. Subjects are the unit throughout (see ``bootstrap``).

* ``score`` of a method: the cohort mean of ``mean_saliency`` for attribution maps, of
  ``ablation_delta`` for layer ablation (``score_column``); rank 1 is the top layer.
* A layer "stands out" only under ``standout_layer``'s rule (Friedman rejects, and the top
  layer's CI lies above every other layer's CI); otherwise the verdict is ``NO_STANDOUT``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from layer_platform.labels import TISSUE_LAYERS
from layer_platform.saliency_names import SUMMARIZED_COLUMNS, comparison_column, score_column
from layer_platform.statistics.comparisons import (
    friedman_layers,
    non_muscle_vs_muscle,
    standout_layer,
)
from layer_platform.statistics.summary import layer_summary

#: Subgroups of scans summarized separately; ``MP_correct``: MP scans the classifier called MP.
#: ``all``, ``MP``, ``control`` and ``MP_correct`` hold labelled scans explained out of sample
#: only (``explained_by`` out_of_fold or held_out, see ``attribution.explainer``); unlabelled
#: scans are their own subgroup; rows without a known out-of-sample explainer enter none.
SUBGROUPS: tuple[str, ...] = ("all", "MP", "control", "MP_correct", "unlabelled")
#: ``explained_by`` values of the headline rows (``attribution.explainer.OUT_OF_SAMPLE``).
HEADLINE_EXPLAINERS: tuple[str, ...] = ("out_of_fold", "held_out")
#: Verdict when too few subjects have all six layers for the Friedman test.
TOO_FEW_SUBJECTS = "too few subjects for a verdict"
_LAYER_INDEX = {layer.key: int(layer) for layer in TISSUE_LAYERS}


def subgroup(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one subgroup (``SUBGROUPS``)."""
    explained_by = (
        frame["explained_by"] if "explained_by" in frame.columns else pd.Series(None, frame.index)
    )
    if name == "unlabelled":
        return frame[explained_by == "unlabelled"]
    frame = frame[explained_by.isin(HEADLINE_EXPLAINERS)]
    if name == "all":
        return frame
    if name in ("MP", "control"):
        return frame[frame["label"] == name]
    if name == "MP_correct":
        if "correct" not in frame.columns:
            return frame.iloc[0:0]
        return frame[(frame["label"] == "MP") & frame["correct"].fillna(False).astype(bool)]
    raise ValueError(f"unknown subgroup {name!r}; expected one of {SUBGROUPS}")


def _long(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """The long table ``statistics.summary`` expects, restricted to finite values."""
    values = pd.to_numeric(rows[column], errors="coerce").astype(float)
    table = rows[["scan_id", "subject_id", "layer"]].assign(value=values)
    return table[np.isfinite(table["value"])]


def _groups(frame: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    return [
        ((str(mode), str(method)), rows)
        for (mode, method), rows in frame.groupby(["input_mode", "method"], sort=True)
    ]


@dataclass(frozen=True)
class _Block:
    """One input mode, method and subgroup with data in the method's ``column``."""

    mode: str
    method: str
    subgroup: str
    column: str
    rows: pd.DataFrame
    table: pd.DataFrame

    def key(self) -> dict[str, str]:
        return {
            "input_mode": self.mode,
            "method": self.method,
            "subgroup": self.subgroup,
            "metric": self.column,
        }


def _subgroup_blocks(frame: pd.DataFrame, column_of: Callable[[str], str]) -> Iterator[_Block]:
    """Every (mode, method) × subgroup whose ``column_of(method)`` has values, in table order."""
    for (mode, method), rows in _groups(frame):
        column = column_of(method)
        for name in SUBGROUPS:
            part = subgroup(rows, name)
            table = _long(part, column)
            if not table.empty:
                yield _Block(mode, method, name, column, part, table)


#: The columns naming a block (``_Block.key``).
_BLOCK_KEY = ["input_mode", "method", "subgroup", "metric"]


def _block_table(
    frame: pd.DataFrame,
    column_of: Callable[[str], str],
    row: Callable[[_Block], dict | None],
    columns: list[str],
) -> pd.DataFrame:
    """One row per block with values (``row`` may skip a block by returning None)."""
    records = []
    for block in _subgroup_blocks(frame, column_of):
        found = row(block)
        if found is not None:
            records.append({**block.key(), **found})
    return pd.DataFrame.from_records(records, columns=columns)


def summary_rows(frame: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Long ``layer_summary``: per input mode, method, subgroup, value column and layer.

    Columns: ``input_mode, method, subgroup, metric, layer, layer_index, n_scans, n_subjects,
    mean, median, ci_low, ci_high, rank``. Mean, median and the 95% CI are over subject means
    (subject-level bootstrap); ``rank`` 1 is the highest mean within its block. Blocks without
    a finite value (e.g. ``mean_saliency`` of layer ablation) are left out.
    """
    records = []
    for (mode, method), rows in _groups(frame):
        for name in SUBGROUPS:
            part = subgroup(rows, name)
            for column in SUMMARIZED_COLUMNS:
                if column not in part.columns:
                    continue
                table = _long(part, column)
                if table.empty:
                    continue
                summary = layer_summary(table, n_boot=n_boot, seed=seed)
                for layer, row in summary.iterrows():
                    records.append(
                        {
                            "input_mode": mode,
                            "method": method,
                            "subgroup": name,
                            "metric": column,
                            "layer": layer,
                            "layer_index": _LAYER_INDEX[str(layer)],
                            **{k: row[k] for k in ("n_scans", "n_subjects", "mean", "median")},
                            "ci_low": row["ci_low"],
                            "ci_high": row["ci_high"],
                            "rank": int(row["rank"]),
                        }
                    )
    return pd.DataFrame.from_records(records, columns=_SUMMARY_COLUMNS)


_SUMMARY_COLUMNS = [
    "input_mode",
    "method",
    "subgroup",
    "metric",
    "layer",
    "layer_index",
    "n_scans",
    "n_subjects",
    "mean",
    "median",
    "ci_low",
    "ci_high",
    "rank",
]


@dataclass(frozen=True)
class Verdict:
    """Does any layer stand out for one input mode, method and subgroup?"""

    layer: str | None
    statement: str
    friedman_statistic: float
    friedman_p: float
    n_subjects: int


def verdict(rows: pd.DataFrame, column: str, *, n_boot: int = 2000, seed: int = 0) -> Verdict:
    """``standout_layer`` on ``column``, or ``TOO_FEW_SUBJECTS`` below two complete subjects."""
    table = _long(rows, column)
    try:
        friedman = friedman_layers(table)
    except ValueError:
        return Verdict(None, TOO_FEW_SUBJECTS, float("nan"), float("nan"), 0)
    standout = standout_layer(table, n_boot=n_boot, seed=seed)
    return Verdict(
        standout.layer,
        standout.statement,
        friedman.statistic,
        friedman.p_value,
        friedman.n_subjects,
    )


def _gated(decided: Verdict, mode: str, no_skill: Mapping[str, str] | None) -> Verdict:
    """``decided``, or no standout layer when ``mode``'s classifier does not beat chance (the
    Friedman figures are kept: they describe the network, not pain)."""
    if not no_skill or mode not in no_skill:
        return decided
    return replace(decided, layer=None, statement=no_skill[mode])


def ranking_rows(
    frame: pd.DataFrame,
    *,
    default_method: str,
    group: str = "all",
    n_boot: int = 2000,
    seed: int = 0,
    no_skill: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """``layer_ranking``: per input mode and method, the six layers by ``score``.

    Columns: ``input_mode, method, is_default_method, layer, rank, score, ci_low, ci_high,
    n_subjects, subgroup, stands_out, verdict``. ``stands_out`` is true for at most one layer
    per mode and method; ``verdict`` repeats the mode and method's statement (``NO_STANDOUT``
    unless a layer passes the rule). ``no_skill`` maps a mode whose classifier does not beat
    chance to its verdict (``skill.ClassifierSkill.verdict``): no layer of it stands out.
    """
    records = []
    for (mode, method), rows in _groups(frame):
        part = subgroup(rows, group)
        column = score_column(method)
        table = _long(part, column)
        if table.empty:
            continue
        summary = layer_summary(table, n_boot=n_boot, seed=seed)
        decided = _gated(verdict(part, column, n_boot=n_boot, seed=seed), mode, no_skill)
        for layer, row in summary.sort_values(["rank", "mean"], ascending=[True, False]).iterrows():
            records.append(
                {
                    "input_mode": mode,
                    "method": method,
                    "is_default_method": method == default_method,
                    "layer": layer,
                    "rank": int(row["rank"]),
                    "score": float(row["mean"]),
                    "ci_low": float(row["ci_low"]),
                    "ci_high": float(row["ci_high"]),
                    "n_subjects": int(row["n_subjects"]),
                    "subgroup": group,
                    "stands_out": decided.layer == layer,
                    "verdict": decided.statement,
                }
            )
    return pd.DataFrame.from_records(records, columns=_RANKING_COLUMNS)


_RANKING_COLUMNS = [
    "input_mode",
    "method",
    "is_default_method",
    "layer",
    "rank",
    "score",
    "ci_low",
    "ci_high",
    "n_subjects",
    "subgroup",
    "stands_out",
    "verdict",
]


def comparison_rows(frame: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``layer_comparison``: all non-muscle layers together vs muscle, paired by subject.

    Per input mode, method and subgroup: ``metric`` (``saliency_share``, or ``ablation_delta``
    for layer ablation), ``n_subjects``, ``mean_difference`` (non-muscle minus muscle, mean of
    subject differences) with its bootstrap CI, and the Wilcoxon signed-rank statistic and p.
    Blocks with fewer than two subjects having all six layers, or with no non-zero difference,
    are left out.
    """

    def row(block: _Block) -> dict | None:
        try:
            result = non_muscle_vs_muscle(block.table, n_boot=n_boot, seed=seed)
        except ValueError:  # too few complete subjects, or every difference zero
            return None
        return {
            "n_subjects": result.n_subjects,
            "mean_difference": result.mean_difference,
            "ci_low": result.ci_low,
            "ci_high": result.ci_high,
            "wilcoxon_statistic": result.wilcoxon_statistic,
            "p_value": result.p_value,
        }

    return _block_table(frame, comparison_column, row, _COMPARISON_COLUMNS)


_COMPARISON_COLUMNS = [
    *_BLOCK_KEY,
    "n_subjects",
    "mean_difference",
    "ci_low",
    "ci_high",
    "wilcoxon_statistic",
    "p_value",
]


def friedman_rows(
    frame: pd.DataFrame,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    no_skill: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """``layer_friedman``: per input mode, method and subgroup, the Friedman test across the six
    layers on the method's score, and the standout verdict (``standout_layer``, or ``NO_STANDOUT``
    / ``TOO_FEW_SUBJECTS``, or for a mode in ``no_skill`` its verdict)."""

    def row(block: _Block) -> dict:
        decided = verdict(block.rows, block.column, n_boot=n_boot, seed=seed)
        decided = _gated(decided, block.mode, no_skill)
        return {
            "n_subjects": decided.n_subjects,
            "statistic": decided.friedman_statistic,
            "p_value": decided.friedman_p,
            "standout_layer": decided.layer,
            "verdict": decided.statement,
        }

    return _block_table(frame, score_column, row, _FRIEDMAN_COLUMNS)


_FRIEDMAN_COLUMNS = [
    *_BLOCK_KEY,
    "n_subjects",
    "statistic",
    "p_value",
    "standout_layer",
    "verdict",
]

#: The cohort tables ``cohort_tables`` returns, in the warehouse.
SUMMARY_TABLES: tuple[str, ...] = (
    "layer_summary",
    "layer_ranking",
    "layer_comparison",
    "layer_friedman",
)


def cohort_tables(
    frame: pd.DataFrame,
    *,
    default_method: str,
    group: str = "all",
    n_boot: int = 2000,
    no_skill: Mapping[str, str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Every table of ``SUMMARY_TABLES`` from champion ``layer_saliency`` rows (empty frames
    when there are none), so the warehouse always holds one consistent set."""
    if frame.empty:
        return {name: pd.DataFrame() for name in SUMMARY_TABLES}
    return {
        "layer_summary": summary_rows(frame, n_boot=n_boot),
        "layer_ranking": ranking_rows(
            frame, default_method=default_method, group=group, n_boot=n_boot, no_skill=no_skill
        ),
        "layer_comparison": comparison_rows(frame, n_boot=n_boot),
        "layer_friedman": friedman_rows(frame, n_boot=n_boot, no_skill=no_skill),
    }
