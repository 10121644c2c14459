"""Per-layer cohort summaries from the long table the attribution step writes.

The long table has one row per (scan, layer): columns ``scan_id``, ``subject_id``, ``layer``
(layer key, e.g. ``"deep_fascia"``) and a value column (e.g. ``enrichment``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform.statistics.bootstrap import bootstrap_mean_ci

REQUIRED_COLUMNS: tuple[str, ...] = ("scan_id", "subject_id", "layer")


def check_table(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """The table's rows with finite values, after checking columns and layer names."""
    missing = [c for c in (*REQUIRED_COLUMNS, value) if c not in table.columns]
    if missing:
        raise ValueError(f"long table lacks column(s) {missing}; has {list(table.columns)}")
    for key in table["layer"].unique():
        if Layer.from_key(str(key)) == Layer.BACKGROUND:
            raise ValueError("background is not a tissue layer; drop its rows")
    return table[np.isfinite(table[value].to_numpy(dtype=float))]


def subject_layer_matrix(table: pd.DataFrame, *, value: str = "value") -> pd.DataFrame:
    """Subjects x layers (anatomical order) of per-subject mean values; NaN where missing."""
    rows = check_table(table, value)
    matrix = rows.pivot_table(index="subject_id", columns="layer", values=value, aggfunc="mean")
    return matrix.reindex(columns=[layer.key for layer in TISSUE_LAYERS])


def layer_summary(
    table: pd.DataFrame,
    *,
    value: str = "value",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per layer: n_scans, n_subjects, mean, median, ci_low, ci_high, rank (1 = highest mean).

    Mean, median and CI are over subject means (see ``bootstrap``); a scan without a finite
    value for a layer (e.g. NaN enrichment of an absent layer) does not count for it. Rows are
    the layers present, skin to depth.
    """
    rows = check_table(table, value)
    records = {}
    for layer in TISSUE_LAYERS:
        group = rows[rows["layer"] == layer.key]
        if group.empty:
            continue
        ci = bootstrap_mean_ci(
            group[value], group["subject_id"], n_boot=n_boot, confidence=confidence, seed=seed
        )
        records[layer.key] = {
            "n_scans": group["scan_id"].nunique(),
            "n_subjects": ci.n_subjects,
            "mean": ci.mean,
            "median": float(group.groupby("subject_id")[value].mean().median()),
            "ci_low": ci.ci_low,
            "ci_high": ci.ci_high,
        }
    if not records:
        raise ValueError(f"no finite {value!r} values to summarise")
    summary = pd.DataFrame.from_dict(records, orient="index").rename_axis("layer")
    summary["rank"] = summary["mean"].rank(ascending=False, method="min").astype(int)
    return summary
