"""What one validation cohort's run concluded, against what was planted: ``validation_matrix``
rows, and the matrix's rates.

A mode sees the drivers of its modalities (``bmode_swe`` both). Where it sees none (a null
cohort, or the SWE mode of a B-mode-only driver) the right answer is "no layer stands out";
where it sees one, the planted layer must rank first *and* stand out. A driver cohort whose
classifier does not beat chance is not counted against the method: nothing could be found.
"""

from __future__ import annotations

import pandas as pd

from layer_platform.statistics.recovery import MODE_MODALITIES
from layer_platform.timestamps import utc_now
from layer_platform.validation.matrix import Matrix, Scenario
from layer_platform.warehouse.queries import classifier_skills
from layer_platform.warehouse.store import Warehouse

#: One row per mode and method of the cohort's ranking (rank 1 first per group).
RANKED = """
    SELECT r.input_mode, r.method, r.is_default_method, r.model_version, any_value(r.verdict)
               AS verdict,
           list(r.layer ORDER BY r.rank) AS layers,
           list(r.layer ORDER BY r.rank) FILTER (WHERE r.stands_out) AS standing_out,
           any_value(m.value) AS heldout_auc,
           bool_or(r.confounded_by_site) AS confounded_by_site,
           any_value(r.boundary_sensitivity) AS boundary_sensitivity,
           any_value(r.layer_size_differs) AS layer_size_differs
    FROM layer_ranking r
    LEFT JOIN (SELECT input_mode, model_version, value FROM model_metrics
               WHERE fold = 'test' AND metric = 'heldout_auc') m
      ON m.input_mode = r.input_mode AND m.model_version = r.model_version
    GROUP BY r.input_mode, r.method, r.is_default_method, r.model_version
    ORDER BY r.input_mode, r.method
"""


def planted_for(scenario: Scenario, mode: str) -> list[str]:
    """The planted layers an input mode's classifier can see."""
    return sorted({layer for m in MODE_MODALITIES[mode] for layer in scenario.planted[m]})


def outcome_rows(
    matrix: Matrix,
    scenario: Scenario,
    warehouse: Warehouse,
    *,
    seconds: float,
    reference_matching: str = "flat",
) -> pd.DataFrame:
    """``validation_matrix`` rows of one cohort run to its end (every ranked mode and method),
    its saliency computed with ``reference_matching``."""
    ranked = warehouse.query(RANKED)
    versions = ranked[["input_mode", "model_version"]].drop_duplicates()
    skills, _ = classifier_skills(warehouse, dict(versions.itertuples(index=False)))
    now, records = utc_now(), []
    for row in ranked.itertuples(index=False):
        planted = planted_for(scenario, row.input_mode)
        layers = list(row.layers)
        # DuckDB hands a LIST back as a NumPy array (NULL: None), never as a Python list
        standing = list(row.standing_out) if pd.api.types.is_list_like(row.standing_out) else []
        standout = standing[0] if standing else None
        skill = skills.get(row.input_mode)
        ranks = [layers.index(layer) + 1 for layer in planted if layer in layers]
        records.append(
            {
                "matrix": matrix.name,
                "scenario": scenario.name,
                "fingerprint": matrix.fingerprint(scenario),
                "seed": scenario.seed,
                "subjects": scenario.subjects,
                "input_mode": row.input_mode,
                "method": row.method,
                "reference_matching": reference_matching,
                "is_default_method": bool(row.is_default_method),
                "planted": ",".join(planted) or "none",
                "top_layer": layers[0],
                "planted_rank": min(ranks) if ranks else None,
                "standout_layer": standout,
                "verdict": row.verdict,
                "heldout_auc": row.heldout_auc,
                "oof_auc": None if skill is None else skill.auc,
                "skill_p": None if skill is None else skill.p_value,
                "beats_chance": skill is not None and skill.beats_chance,
                # NULL: a ranking written before the site gate existed
                "confounded_by_site": None
                if pd.isna(row.confounded_by_site)
                else bool(row.confounded_by_site),
                "correct": _correct(planted, layers[0], standout),
                "model_version": row.model_version,
                "seconds": seconds,
                "computed_at": now,
                "boundary_sensitivity": row.boundary_sensitivity,
                "layer_size_differs": row.layer_size_differs,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    return frame.astype({"planted_rank": "Int64"})


def _correct(planted: list[str], top: str, standout: str | None) -> bool:
    if not planted:
        return standout is None
    return top in planted and standout in planted


COLUMNS = [
    "matrix",
    "scenario",
    "fingerprint",
    "seed",
    "subjects",
    "input_mode",
    "method",
    "reference_matching",
    "is_default_method",
    "planted",
    "top_layer",
    "planted_rank",
    "standout_layer",
    "verdict",
    "heldout_auc",
    "oof_auc",
    "skill_p",
    "beats_chance",
    "confounded_by_site",
    "correct",
    "model_version",
    "seconds",
    "computed_at",
    "boundary_sensitivity",
    "layer_size_differs",
]


def rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Per method and reference matching: driver rows that beat chance and were recovered
    (top-1 and standing out), those whose planted layer merely ranks first (``top1``: what a
    method without the gates' checks can be compared on), null rows with no finding, and the
    same counts as rates (NaN where no row counts); ``null_flagged``: null rows whose
    classifier's skill was the site's (``confounded_by_site``, which also keeps them quiet)."""
    records = []
    for (method, matching), rows in frame.groupby(["method", "reference_matching"], sort=True):
        drivers = rows[(rows["planted"] != "none") & rows["beats_chance"]]
        nulls = rows[rows["planted"] == "none"]
        first = drivers["planted_rank"] == 1
        records.append(
            {
                "method": method,
                "reference_matching": matching,
                "is_default_method": bool(rows["is_default_method"].any()),
                "driver_rows": len(drivers),
                "recovered": int(drivers["correct"].sum()),
                "recovery_rate": drivers["correct"].mean() if len(drivers) else float("nan"),
                "top1": int(first.sum()),
                "top1_rate": first.mean() if len(drivers) else float("nan"),
                "driver_rows_at_chance": int(
                    ((rows["planted"] != "none") & ~rows["beats_chance"]).sum()
                ),
                "null_rows": len(nulls),
                "null_quiet": int(nulls["correct"].sum()),
                "null_quiet_rate": nulls["correct"].mean() if len(nulls) else float("nan"),
                "null_flagged": int(nulls["confounded_by_site"].fillna(False).astype(bool).sum()),
            }
        )
    return pd.DataFrame.from_records(records)
