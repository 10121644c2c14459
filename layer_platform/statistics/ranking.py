"""Cohort tables over the per-scan ``layer_saliency`` rows: summary, ranking, tests.

Input is a pandas frame of ``layer_saliency`` rows (one per scan, input mode, method and layer)
with at least ``scan_id``, ``subject_id``, ``label``, ``input_mode``, ``method``, ``layer`` and
the value columns; an optional boolean ``correct`` (the classifier's call agrees with the label)
defines the ``MP_correct`` subgroup. Subjects are the unit throughout (see ``bootstrap``).

* ``score`` of a method: the cohort mean of ``mean_saliency`` for attribution maps, of
  ``ablation_delta`` for layer ablation (``score_column``); rank 1 is the top layer.
* A layer "stands out" only when every gate of ``verdicts`` passes; otherwise the verdict
  starts with ``NO_STANDOUT`` and names the first gate that failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from layer_platform.labels import TISSUE_LAYERS
from layer_platform.saliency_names import (
    ABLATION_METHOD,
    BOUNDARIES,
    CHANNEL_DELTA_COLUMNS,
    JOINT_ABLATION_COLUMN,
    LAYER_VALUE_METHODS,
    OUT_OF_SAMPLE,
    SUMMARIZED_COLUMNS,
    UNLABELLED,
    boundary_column,
    channel_column,
    comparison_column,
    score_column,
)
from layer_platform.statistics.anatomy import with_size_caveat
from layer_platform.statistics.boundary import with_boundary_sensitivity
from layer_platform.statistics.comparisons import (
    joint_ablation_means,
    non_muscle_vs_muscle,
    tissue_means,
)
from layer_platform.statistics.gates import rank1_probability
from layer_platform.statistics.summary import layer_summary, subject_layer_matrix
from layer_platform.statistics.verdicts import WHOLE_LAYER, Evidence, Verdict, family_verdicts

#: Subgroups of scans summarized separately; ``MP_correct``: MP scans the classifier called MP.
#: ``all``, ``MP``, ``control`` and ``MP_correct`` hold labelled scans explained out of sample
#: only (``explained_by`` out_of_fold or held_out, see ``attribution.explainer``); unlabelled
#: scans are their own subgroup; rows without a known out-of-sample explainer enter none.
SUBGROUPS: tuple[str, ...] = ("all", "MP", "control", "MP_correct", "unlabelled")
_LAYER_INDEX = {layer.key: int(layer) for layer in TISSUE_LAYERS}


def subgroup(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one subgroup (``SUBGROUPS``)."""
    explained_by = (
        frame["explained_by"] if "explained_by" in frame.columns else pd.Series(None, frame.index)
    )
    if name == "unlabelled":
        return frame[explained_by == UNLABELLED]
    frame = frame[explained_by.isin(OUT_OF_SAMPLE)]
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
    """The long table ``statistics.summary`` expects, restricted to finite values (empty when
    the rows lack ``column``, e.g. a frame built before the column existed)."""
    if column not in rows.columns:
        return pd.DataFrame(columns=["scan_id", "subject_id", "layer", "value"])
    values = pd.to_numeric(rows[column], errors="coerce").astype(float)
    table = rows[["scan_id", "subject_id", "layer"]].assign(value=values)
    return table[np.isfinite(table["value"])]


def _groups(frame: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    return [
        ((str(mode), str(method)), rows)
        for (mode, method), rows in frame.groupby(["input_mode", "method"], sort=True)
    ]


#: The columns naming a block (``_Block.key``).
_BLOCK_KEY = ["input_mode", "method", "subgroup", "metric"]


def _block_key(mode: str, method: str, subgroup: str, column: str) -> dict[str, str]:
    return dict(zip(_BLOCK_KEY, (mode, method, subgroup, column), strict=True))


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
        return _block_key(self.mode, self.method, self.subgroup, self.column)


def _subgroup_blocks(frame: pd.DataFrame, column_of: Callable[[str], str]) -> Iterator[_Block]:
    """Every (mode, method) × subgroup whose ``column_of(method)`` has values, in table order."""
    for (mode, method), rows in _groups(frame):
        column = column_of(method)
        for name in SUBGROUPS:
            part = subgroup(rows, name)
            table = _long(part, column)
            if not table.empty:
                yield _Block(mode, method, name, column, part, table)


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
                            **_block_key(mode, method, name, column),
                            "layer": layer,
                            "layer_index": _LAYER_INDEX[str(layer)],
                            **{k: row[k] for k in _LAYER_STATISTICS},
                            "rank": int(row["rank"]),
                        }
                    )
    return pd.DataFrame.from_records(records, columns=_SUMMARY_COLUMNS)


#: ``layer_summary``'s statistics of one layer, as ``statistics.summary`` names them.
_LAYER_STATISTICS = ("n_scans", "n_subjects", "mean", "median", "ci_low", "ci_high")
_SUMMARY_COLUMNS = [*_BLOCK_KEY, "layer", "layer_index", *_LAYER_STATISTICS, "rank"]


def method_views(
    rows: pd.DataFrame, boundary: str | None = None
) -> dict[str, dict[str, pd.DataFrame]]:
    """Per method with finite scores in ``rows`` (one mode's), the long tables the verdict's
    layer tests (gate 4) read (``verdicts.MethodViews``): its score (``score_column``), and for
    layer ablation each modality's channel deltas where the rows carry them; with ``boundary``,
    the same scores with every layer eroded or dilated by one voxel."""
    found = {}
    for method, method_rows in rows.groupby("method", sort=True):
        method = str(method)
        column = score_column(method) if boundary is None else boundary_column(method, boundary)
        views = {WHOLE_LAYER: _long(method_rows, column)}
        if views[WHOLE_LAYER].empty:
            continue
        if method == ABLATION_METHOD:
            for modality in CHANNEL_DELTA_COLUMNS:
                table = _long(method_rows, channel_column(modality, boundary))
                if not table.empty:
                    views[modality] = table
        found[method] = views
    return found


def _verdicts(frame: pd.DataFrame, name: str, evidence: Evidence) -> dict[tuple, Verdict]:
    """Per (mode, method), the verdict on subgroup ``name`` with its boundary sensitivity;
    Holm's family is the candidate claims of the mode's methods that no gate blocks."""
    found = {}
    for mode, rows in frame.groupby("input_mode", sort=True):
        part = subgroup(rows, name)
        decided = family_verdicts(method_views(part), str(mode), evidence)
        perturbed = {b: method_views(part, b) for b in BOUNDARIES}
        sensitive = with_boundary_sensitivity(decided, perturbed, str(mode), evidence)
        checked = with_size_caveat(sensitive, subgroup(rows, "all"))  # needs both classes
        for method, verdict in checked.items():
            found[(str(mode), method)] = verdict
    return found


@dataclass(frozen=True)
class RankingSpec:
    """What ``layer_ranking`` ranks and how it judges: ``group`` is the subgroup ranked
    (``SUBGROUPS``), ``default_method`` the method flagged ``is_default_method``, and
    ``evidence`` what every verdict's gates read."""

    default_method: str
    evidence: Evidence
    group: str = "all"


def ranking_rows(
    frame: pd.DataFrame, spec: RankingSpec, *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """``layer_ranking``: per input mode and method, the six layers by ``score``.

    Columns: ``input_mode, method, is_default_method, layer, rank, score, ci_low, ci_high,
    n_subjects, subgroup, stands_out, verdict, p_rank1, confounded_by_site,
    boundary_sensitivity``. ``stands_out`` is true for at most two layers per mode and method
    (a layer, or a pair that stands out together: ``verdicts``);
    ``verdict`` repeats the mode and method's statement (``verdicts``: it starts with
    ``NO_STANDOUT`` unless every gate passes). ``p_rank1``: the share of subject-bootstrap
    resamples in which the layer has the highest score (sums to 1 per mode and method).
    ``confounded_by_site``: the mode's classifier beats chance but not within sites
    (``confounding``), so nothing stands out. ``boundary_sensitivity``: whether the verdict
    survives every layer eroded and dilated by one voxel (``statistics.boundary``; a failure is
    in the verdict too). ``layer_size_differs``: layers whose size differs between MP and
    control subjects (``statistics.anatomy``; a caveat in a finding's verdict).
    """
    verdicts = _verdicts(frame, spec.group, spec.evidence)
    records = []
    for (mode, method), rows in _groups(frame):
        part = subgroup(rows, spec.group)
        column = score_column(method)
        table = _long(part, column)
        if table.empty:
            continue
        summary = layer_summary(table, n_boot=n_boot, seed=seed)
        decided = verdicts[(mode, method)]
        first = rank1_probability(subject_layer_matrix(table), n_boot=n_boot, seed=seed)
        for layer, row in summary.sort_values(["rank", "mean"], ascending=[True, False]).iterrows():
            records.append(
                {
                    "input_mode": mode,
                    "method": method,
                    "is_default_method": method == spec.default_method,
                    "layer": layer,
                    "rank": int(row["rank"]),
                    "score": float(row["mean"]),
                    "ci_low": float(row["ci_low"]),
                    "ci_high": float(row["ci_high"]),
                    "n_subjects": int(row["n_subjects"]),
                    "subgroup": spec.group,
                    "stands_out": layer in decided.layers,
                    "verdict": decided.statement,
                    "p_rank1": float(first[layer]),
                    "confounded_by_site": spec.evidence.confounded_by_site(mode),
                    "boundary_sensitivity": decided.boundary_sensitivity,
                    "layer_size_differs": decided.layer_size_differs,
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
    "p_rank1",
    "confounded_by_site",
    "boundary_sensitivity",
    "layer_size_differs",
]


def comparison_rows(frame: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``layer_comparison``: all non-muscle tissue vs muscle, paired by subject (the paper's).

    Per input mode, method and subgroup: ``metric`` (``mean_saliency`` for maps: mean over all
    non-muscle tissue voxels vs over muscle voxels; ``joint_ablation_delta`` for layer
    ablation: the drop with all non-muscle layers replaced at once vs with muscle replaced,
    ``comparisons.joint_ablation_means``; ``ablation_delta`` for layer Shapley: the five
    layer values summed vs muscle's; ``comparisons.tissue_means``), ``n_subjects``,
    ``non_muscle_mean``, ``muscle_mean``, ``mean_difference`` (mean of subject differences)
    with its bootstrap CI, and the Wilcoxon signed-rank statistic and p. Blocks with fewer than
    two subjects, or with no non-zero difference, are left out.
    """

    def row(block: _Block) -> dict | None:
        if block.column == JOINT_ABLATION_COLUMN:
            means = joint_ablation_means(block.rows)
        else:
            means = tissue_means(block.rows, ablation=block.method in LAYER_VALUE_METHODS)
        try:
            result = non_muscle_vs_muscle(means, n_boot=n_boot, seed=seed)
        except ValueError:  # too few subjects, or every difference zero
            return None
        return {k: getattr(result, k) for k in _COMPARISON_COLUMNS[len(_BLOCK_KEY) :]}

    return _block_table(frame, comparison_column, row, _COMPARISON_COLUMNS)


_COMPARISON_COLUMNS = [
    *_BLOCK_KEY,
    "n_subjects",
    "non_muscle_mean",
    "muscle_mean",
    "mean_difference",
    "ci_low",
    "ci_high",
    "wilcoxon_statistic",
    "p_value",
]


def friedman_rows(
    frame: pd.DataFrame,
    *,
    evidence: Evidence,
) -> pd.DataFrame:
    """``layer_friedman``: per input mode, method and subgroup, the Friedman test across the six
    layers on the method's score (a description: the layers differ), and the verdict of
    ``verdicts`` on that subgroup (gate 4's family: the mode's methods on that subgroup)."""
    verdicts = {name: _verdicts(frame, name, evidence) for name in SUBGROUPS}

    def row(block: _Block) -> dict:
        decided = verdicts[block.subgroup][(block.mode, block.method)]
        return {
            "n_subjects": decided.n_subjects,
            "statistic": decided.friedman_statistic,
            "p_value": decided.friedman_p,
            "standout_layer": decided.layer,
            "verdict": decided.statement,
            "holm_p": decided.holm_p,
        }

    return _block_table(frame, score_column, row, _FRIEDMAN_COLUMNS)


_FRIEDMAN_COLUMNS = [
    *_BLOCK_KEY,
    "n_subjects",
    "statistic",
    "p_value",
    "standout_layer",
    "verdict",
    "holm_p",
]

#: The cohort tables ``cohort_tables`` returns, in the warehouse.
SUMMARY_TABLES: tuple[str, ...] = (
    "layer_summary",
    "layer_ranking",
    "layer_comparison",
    "layer_friedman",
)


def cohort_tables(
    frame: pd.DataFrame, spec: RankingSpec, *, n_boot: int = 2000
) -> dict[str, pd.DataFrame]:
    """Every table of ``SUMMARY_TABLES`` from champion ``layer_saliency`` rows (empty frames
    when there are none), so the warehouse always holds one consistent set."""
    if frame.empty:
        return {name: pd.DataFrame() for name in SUMMARY_TABLES}
    return {
        "layer_summary": summary_rows(frame, n_boot=n_boot),
        "layer_ranking": ranking_rows(frame, spec, n_boot=n_boot),
        "layer_comparison": comparison_rows(frame, n_boot=n_boot),
        "layer_friedman": friedman_rows(frame, evidence=spec.evidence),
    }
