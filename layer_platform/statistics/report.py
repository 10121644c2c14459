"""Reading the cohort tables: the Markdown results table and the terminal ranking.

Both render ``ranking.ranking_rows`` output (and ``comparison_rows`` for the Markdown), so the
UI, the CLI and the asset metadata show the same figures.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pandas as pd

from layer_platform.labels import TISSUE_LAYERS
from layer_platform.saliency_names import LAYER_VALUE_METHODS, score_column


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table, values as ``str`` gives them."""
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


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
    for mode, rows, methods in _by_mode(ranking):
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
        f"; {r['metric']} non-muscle {r['non_muscle_mean']:.3g} vs muscle"
        f" {r['muscle_mean']:.3g}, difference {difference},"
        f" Wilcoxon p = {r['p_value']:.2g} ({int(r['n_subjects'])} subjects)"
    )


def _is_default(rows: pd.DataFrame, method: str) -> bool:
    return bool(rows[rows["method"] == method]["is_default_method"].any())


def _by_mode(ranking: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame, list[str]]]:
    """Each input mode's ranking rows and its methods in display order."""
    for mode, rows in ranking.groupby("input_mode", sort=True):
        yield str(mode), rows, _method_order(rows)


def _method_order(rows: pd.DataFrame) -> list[str]:
    """Default method first, one-number-per-layer methods (ablation, Shapley) last, the rest
    alphabetically."""
    methods = sorted(rows["method"].unique())
    return sorted(methods, key=lambda m: (not _is_default(rows, m), m in LAYER_VALUE_METHODS, m))


def _area(row) -> str:
    return f"{row.mean_area:+.3f} ({row.ci_low:+.3f} to {row.ci_high:+.3f})"


def faithfulness_markdown(table: pd.DataFrame) -> str:
    """``method_faithfulness`` as one row per input mode and method, one column per removal
    (mean area and CI), and the held-out scans: what the ranking's page shows beside it."""
    cells = table.assign(cell=[_area(r) for r in table.itertuples(index=False)])
    wide = cells.pivot_table(
        index=["input_mode", "method"], columns="variant", values="cell", aggfunc="first"
    )
    counts = cells.groupby(["input_mode", "method"])["n_scans"].max()
    return markdown_table(wide.join(counts.rename("held-out scans")).reset_index())


def _faithfulness_line(table: pd.DataFrame | None, mode: str, method: str) -> list[str]:
    """The method's faithfulness areas under its verdict (none without rows)."""
    if table is None:
        return []
    rows = table[(table["input_mode"] == mode) & (table["method"] == method)]
    if rows.empty:
        return []
    areas = ", ".join(f"{r.variant} {_area(r)}" for r in rows.sort_values("variant").itertuples())
    return [f"    faithfulness on {rows['n_scans'].max()} held-out scans: {areas}"]


def format_ranking(
    ranking: pd.DataFrame,
    *,
    headers: Mapping[str, str] | None = None,
    faithfulness: pd.DataFrame | None = None,
) -> str:
    """Plain-text ranking per input mode for a terminal: one column per method, rank rows, each
    method's verdict and, given ``method_faithfulness`` rows, its faithfulness areas."""
    if ranking.empty:
        return "no layer ranking yet: run `layer-platform run` (saliency stages)"
    blocks = []
    for mode, rows, methods in _by_mode(ranking):
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
            lines += _faithfulness_line(faithfulness, mode, method)
        blocks.append("\n".join(lines))
    legend = (
        "layer ranking (rank 1 = top; score: cohort mean of mean_saliency for attribution maps,"
        " of ablation_delta for layer_ablation; * = default method)"
    )
    if faithfulness is not None and not faithfulness.empty:
        legend += (
            "\nfaithfulness: area between random and the method's layer-deletion curves on"
            " held-out scans, -1..1, > 0 = its top layers matter more than random ones"
        )
    return "\n\n".join([legend, *blocks])
