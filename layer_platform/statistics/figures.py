"""The cohort bar chart of the layer ranking: one panel per input mode and method, 95% CIs.

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas (never ``pyplot``), so no
global figure state leaks into a Dagster worker.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from layer_platform.labels import LAYER_COLOURS, TISSUE_LAYERS


def ranking_bars_png(ranking: pd.DataFrame, methods: Sequence[str]) -> bytes:
    """Bars of each layer's score with its CI, rows = input modes, columns = ``methods``.

    Layers run skin to depth left to right, each in its ``LAYER_COLOURS`` colour (the one the
    overlays and exported label maps use); the top-ranked layer is drawn opaque with a black
    edge, the others faded. ``ranking``
    is ``statistics.ranking_rows`` output; methods missing from it are left out.
    """
    methods = [m for m in methods if m in set(ranking["method"])]
    modes = sorted(ranking["input_mode"].unique())
    if not methods or not modes:
        raise ValueError("ranking_bars_png needs at least one mode and method in the ranking")
    keys = [layer.key for layer in TISSUE_LAYERS]
    fig = Figure(figsize=(3.2 * len(methods), 2.4 * len(modes)), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(len(modes), len(methods), squeeze=False))
    for i, mode in enumerate(modes):
        for j, method in enumerate(methods):
            ax = axes[i, j]
            rows = ranking[(ranking["input_mode"] == mode) & (ranking["method"] == method)]
            rows = rows.set_index("layer").reindex(keys)
            score = rows["score"].to_numpy(dtype=float)
            low = score - rows["ci_low"].to_numpy(dtype=float)
            high = rows["ci_high"].to_numpy(dtype=float) - score
            top = (rows["rank"] == 1).to_numpy()
            bars = ax.bar(range(len(keys)), score, yerr=[low, high], capsize=2)
            for bar, layer, is_top in zip(bars, TISSUE_LAYERS, top, strict=True):
                bar.set_color(to_rgba(LAYER_COLOURS[layer], 1.0 if is_top else 0.45))
                bar.set_edgecolor("black" if is_top else "none")
            ax.axhline(0.0, color="grey", linewidth=0.5)
            ax.set_xticks(range(len(keys)))
            ax.set_xticklabels([k.replace("_", "\n") for k in keys], fontsize=6)
            ax.tick_params(axis="y", labelsize=6)
            ax.set_title(f"{mode} · {method}", fontsize=8)
            if j == 0:
                ax.set_ylabel("score (95% CI)", fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
