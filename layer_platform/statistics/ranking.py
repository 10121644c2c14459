"""Cohort tables over the per-scan ``layer_saliency`` rows: summary, ranking, tests, recovery.

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

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform.statistics.comparisons import (
    friedman_layers,
    non_muscle_vs_muscle,
    standout_layer,
)
from layer_platform.statistics.summary import layer_summary

#: Subgroups of scans summarized separately; ``MP_correct``: MP scans the classifier called MP.
SUBGROUPS: tuple[str, ...] = ("all", "MP", "control", "MP_correct")
#: ``layer_saliency`` columns summarized per layer.
VALUE_COLUMNS: tuple[str, ...] = (
    "mean_saliency",
    "saliency_share",
    "enrichment",
    "ablation_delta",
)
ABLATION_METHOD = "layer_ablation"
#: Verdict when too few subjects have all six layers for the Friedman test.
TOO_FEW_SUBJECTS = "too few subjects for a verdict"
#: Which input modality each input mode's classifier sees (for planted-driver recovery).
MODE_MODALITIES: dict[str, tuple[str, ...]] = {
    "bmode": ("bmode",),
    "swe": ("swe",),
    "bmode_swe": ("bmode", "swe"),
}
_LAYER_INDEX = {layer.key: int(layer) for layer in TISSUE_LAYERS}


def score_column(method: str) -> str:
    """The per-layer figure a method is ranked by."""
    return "ablation_delta" if method == ABLATION_METHOD else "mean_saliency"


def comparison_column(method: str) -> str:
    """The value compared between non-muscle layers and muscle: shares sum to 1 per scan."""
    return "ablation_delta" if method == ABLATION_METHOD else "saliency_share"


def subgroup(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one subgroup (``SUBGROUPS``)."""
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
            for column in VALUE_COLUMNS:
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
    records = []
    for block in _subgroup_blocks(frame, comparison_column):
        try:
            result = non_muscle_vs_muscle(block.table, n_boot=n_boot, seed=seed)
        except ValueError:  # too few complete subjects, or every difference zero
            continue
        records.append(
            {
                **block.key(),
                "n_subjects": result.n_subjects,
                "mean_difference": result.mean_difference,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "wilcoxon_statistic": result.wilcoxon_statistic,
                "p_value": result.p_value,
            }
        )
    return pd.DataFrame.from_records(records, columns=_COMPARISON_COLUMNS)


_COMPARISON_COLUMNS = [
    "input_mode",
    "method",
    "subgroup",
    "metric",
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
    records = []
    for block in _subgroup_blocks(frame, score_column):
        decided = verdict(block.rows, block.column, n_boot=n_boot, seed=seed)
        decided = _gated(decided, block.mode, no_skill)
        records.append(
            {
                **block.key(),
                "n_subjects": decided.n_subjects,
                "statistic": decided.friedman_statistic,
                "p_value": decided.friedman_p,
                "standout_layer": decided.layer,
                "verdict": decided.statement,
            }
        )
    return pd.DataFrame.from_records(records, columns=_FRIEDMAN_COLUMNS)


_FRIEDMAN_COLUMNS = [
    "input_mode",
    "method",
    "subgroup",
    "metric",
    "n_subjects",
    "statistic",
    "p_value",
    "standout_layer",
    "verdict",
]


def driver_recovery_rows(
    ranking: pd.DataFrame, drivers: Mapping[str, str | None], *, cohort: str
) -> pd.DataFrame:
    """``driver_recovery``: where the planted layer landed in each mode and method's ranking.

    Args:
        ranking: ``ranking_rows`` output.
        drivers: planted layer key (or None) per modality, ``{"bmode": ..., "swe": ...}``.
        cohort: a name for the simulated cohort (e.g. its seed and size).

    A mode gets one row per modality it sees (``bmode_swe`` both). ``recovered``: the planted
    layer ranks within the top k, k the number of distinct layers planted in the modalities the
    mode sees (1, or 2 for ``bmode_swe`` with two different drivers). A modality without a
    driver gets ``planted_layer = 'none'`` and is recovered when no layer stands out.
    """
    records = []
    for (mode, method), rows in ranking.groupby(["input_mode", "method"], sort=True):
        modalities = MODE_MODALITIES.get(str(mode), ())
        planted = {drivers.get(m) for m in modalities} - {None}
        ranks = dict(zip(rows["layer"], rows["rank"], strict=True))
        any_standout = bool(rows["stands_out"].any())
        for modality in modalities:
            layer = drivers.get(modality)
            if layer is None:
                rank, recovered = None, not any_standout
            else:
                rank = ranks.get(layer)
                recovered = rank is not None and int(rank) <= len(planted)
            records.append(
                {
                    "cohort": cohort,
                    "input_mode": mode,
                    "method": method,
                    "modality": modality,
                    "planted_layer": layer or "none",
                    "rank_of_planted_layer": None if rank is None else int(rank),
                    "recovered": bool(recovered),
                }
            )
    frame = pd.DataFrame.from_records(records, columns=_RECOVERY_COLUMNS)
    return frame.astype({"rank_of_planted_layer": "Int64"})


_RECOVERY_COLUMNS = [
    "cohort",
    "input_mode",
    "method",
    "modality",
    "planted_layer",
    "rank_of_planted_layer",
    "recovered",
]


def _cell(score: float, low: float, high: float) -> str:
    return f"{score:.3g} ({low:.3g}–{high:.3g})"


def results_markdown(
    ranking: pd.DataFrame,
    comparison: pd.DataFrame,
    *,
    headers: Mapping[str, str] | None = None,
) -> str:
    """The paper's kind of results table, one block per input mode.

    Rows are the six layers skin to depth; each method's column shows its score with the 95%
    CI and the rank (top layer in bold); under it the non-muscle vs muscle comparison of every
    method and each method's verdict. ``headers`` adds text after a mode's title (model
    version, number of scans).
    """
    if ranking.empty:
        return "_no layer saliency rows for the champion models yet_"
    blocks = []
    for mode, rows in ranking.groupby("input_mode", sort=True):
        methods = _method_order(rows)
        title = f"### {mode}" + (f" — {headers[mode]}" if headers and mode in headers else "")
        head = ["layer"] + [
            f"{m}{' (default)' if _is_default(rows, m) else ''} [{score_column(m)}]"
            for m in methods
        ]
        lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for layer in TISSUE_LAYERS:
            cells = [layer.key]
            for method in methods:
                hit = rows[(rows["method"] == method) & (rows["layer"] == layer.key)]
                if hit.empty:
                    cells.append("–")
                    continue
                r = hit.iloc[0]
                text = f"{_cell(r['score'], r['ci_low'], r['ci_high'])} #{int(r['rank'])}"
                cells.append(f"**{text}**" if int(r["rank"]) == 1 else text)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for method in methods:
            statement = rows[rows["method"] == method]["verdict"].iloc[0]
            lines.append(f"- **{method}**: {statement}{_comparison_text(comparison, mode, method)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _comparison_text(comparison: pd.DataFrame, mode: str, method: str) -> str:
    if comparison.empty:
        return ""
    hit = comparison[
        (comparison["input_mode"] == mode)
        & (comparison["method"] == method)
        & (comparison["subgroup"] == "all")
    ]
    if hit.empty:
        return ""
    r = hit.iloc[0]
    difference = _cell(r["mean_difference"], r["ci_low"], r["ci_high"])
    return (
        f"; non-muscle − muscle {r['metric']}: {difference},"
        f" Wilcoxon p = {r['p_value']:.2g} ({int(r['n_subjects'])} subjects)"
    )


def _is_default(rows: pd.DataFrame, method: str) -> bool:
    return bool(rows[rows["method"] == method]["is_default_method"].any())


def _method_order(rows: pd.DataFrame) -> list[str]:
    """Default method first, layer ablation last, the rest alphabetically."""
    methods = sorted(rows["method"].unique())
    return sorted(methods, key=lambda m: (not _is_default(rows, m), m == ABLATION_METHOD, m))


def format_ranking(ranking: pd.DataFrame, *, headers: Mapping[str, str] | None = None) -> str:
    """Plain-text ranking per input mode for a terminal: one column per method, rank rows."""
    if ranking.empty:
        return "no layer ranking yet: run `layer-platform run` (saliency stages)"
    blocks = []
    for mode, rows in ranking.groupby("input_mode", sort=True):
        methods = _method_order(rows)
        title = f"{mode}" + (f"  ({headers[mode]})" if headers and mode in headers else "")
        columns = [[m + ("*" if _is_default(rows, m) else "")] for m in methods]
        for column, method in zip(columns, methods, strict=True):
            ranked = rows[rows["method"] == method].sort_values(["rank", "layer"])
            column += [f"{r.layer} {r.score:+.3f}" for r in ranked.itertuples()]
        depth = max(len(c) for c in columns)
        widths = [max(len(cell) for cell in column) + 3 for column in columns]
        lines = [title]
        for i in range(depth):
            label = "rank" if i == 0 else str(i)
            cells = [c[i] if i < len(c) else "" for c in columns]
            line = f"  {label:<6}" + "".join(
                f"{c:<{w}}" for c, w in zip(cells, widths, strict=True)
            )
            lines.append(line.rstrip())
        for method in methods:
            statement = rows[rows["method"] == method]["verdict"].iloc[0]
            lines.append(f"  {method}: {statement}")
        blocks.append("\n".join(lines))
    legend = (
        "layer ranking (rank 1 = top; score: cohort mean of mean_saliency for attribution maps,"
        " of ablation_delta for layer_ablation; * = default method)"
    )
    return "\n\n".join([legend, *blocks])


def planted_drivers(bmode: Layer | str | None, swe: Layer | str | None) -> dict[str, str | None]:
    """``{"bmode": key, "swe": key}`` from a simulator's drivers (Layer, key or None)."""

    def key(value: Layer | str | None) -> str | None:
        if value is None:
            return None
        return value.key if isinstance(value, Layer) else Layer.from_key(str(value)).key

    return {"bmode": key(bmode), "swe": key(swe)}


def sample_scans(frame: pd.DataFrame, n: int, *, prefer: Sequence[str] = ("MP",)) -> list[str]:
    """Up to ``n`` scan ids from distinct subjects, labels in ``prefer`` first, then by id.

    Deterministic, so a check re-run on the same table uses the same scans.
    """
    scans = frame.drop_duplicates("scan_id")[["scan_id", "subject_id", "label"]]
    scans = scans.assign(order=~scans["label"].isin(list(prefer))).sort_values(
        ["order", "subject_id", "scan_id"]
    )
    chosen = scans.drop_duplicates("subject_id").head(n)
    return chosen["scan_id"].tolist()
