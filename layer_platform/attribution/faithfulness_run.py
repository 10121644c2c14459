"""``method_faithfulness``: how faithful each champion's methods are on its held-out scans.

Only test scans (``explained_by = held_out``), each through the network that explained it (the
fold-ensemble member its subject's hash names, ``explainer.choose_explainer``), which trained on
none of them: the model whose output is deleted is the model that was explained. Each scan is
removed against the reference its rows were computed with (``batch.scan_config``: the frozen
reference over the controls that network trained on), and each method is ordered by the score
``layer_ranking`` ranks it by (``saliency_names.score_column``). The per-scan areas
(``faithfulness``) are summarized per input mode, method and removal with a subject-level
bootstrap CI, the unit ``layer_ranking`` uses, so the two tables read side by side.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from layer_platform.attribution.ablation import layer_fill
from layer_platform.attribution.champions import load_champions
from layer_platform.attribution.core import mp_logit
from layer_platform.attribution.explainer import choose_explainer
from layer_platform.attribution.faithfulness import FaithfulnessSettings, scan_faithfulness
from layer_platform.attribution.randomization_run import ConfigFor
from layer_platform.classification.modes import mode_input, no_signal_channels
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.io import read_label_map
from layer_platform.saliency_names import HELD_OUT, score_column
from layer_platform.settings import LayerPaths
from layer_platform.statistics.bootstrap import bootstrap_mean_ci
from layer_platform.tracking.mlflow_registry import Tracking
from layer_platform.warehouse.store import Warehouse

#: The columns of one scan's result (``held_out_faithfulness``).
SCAN_COLUMNS = ("input_mode", "method", "variant", "scan_id", "subject_id", "area")


def _scores(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per method, layer key to the scan's ranking score."""
    return {
        method: dict(zip(found["layer"], found[score_column(method)].astype(float), strict=True))
        for method, found in rows.groupby("method")
    }


def held_out_faithfulness(
    frame: pd.DataFrame,
    *,
    tracking: Tracking,
    warehouse: Warehouse,
    paths: LayerPaths,
    settings: FaithfulnessSettings,
    config_for: ConfigFor,
) -> pd.DataFrame:
    """One row per held-out scan, input mode, method and removal (``SCAN_COLUMNS``) of the
    champion rows in ``frame``; empty without held-out rows."""
    if frame.empty:
        return pd.DataFrame(columns=list(SCAN_COLUMNS))
    held = frame[frame["explained_by"] == HELD_OUT]
    if held.empty:
        return pd.DataFrame(columns=list(SCAN_COLUMNS))
    label_paths = dict(
        warehouse.query("SELECT scan_id, path FROM segmentations").itertuples(index=False)
    )
    champions = load_champions(tracking, sorted(held["input_mode"].unique()))
    found = []
    for mode, mode_rows in held.groupby("input_mode"):
        champ = champions[str(mode)]
        device = next(champ.model.parameters()).device
        keys = ["scan_id", "subject_id", "label"]
        for (scan_id, subject_id, label), rows in mode_rows.groupby(keys):
            explainer = choose_explainer(champ.model, champ.scheme, str(subject_id), str(label))
            stored = load_preprocessed(paths.artifacts / "preprocessed" / str(scan_id))
            x = mode_input(str(mode), stored)
            if x is None or explainer is None:
                continue
            labels = read_label_map(label_paths[scan_id])
            config = config_for(str(mode), explainer.member)(x, labels)
            inputs = torch.as_tensor(x[None], device=device)
            _, _, _, fill = layer_fill("faithfulness", inputs, None, labels, config)
            results = scan_faithfulness(
                mp_logit(explainer.model),
                inputs,
                labels,
                fill,
                _scores(rows),
                replace(settings, batch=config.perturbations_per_eval),
                no_signal_channels=no_signal_channels(str(mode)),
            )
            found += [(mode, r.method, r.variant, scan_id, subject_id, r.area) for r in results]
    return pd.DataFrame(found, columns=list(SCAN_COLUMNS))


def faithfulness_table(
    per_scan: pd.DataFrame, settings: FaithfulnessSettings, *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Per input mode, method and removal: the mean area over subjects (each subject's scans
    averaged first) with its subject-bootstrap CI, and the share of scans above random."""
    rows = []
    for (mode, method, variant), group in per_scan.groupby(["input_mode", "method", "variant"]):
        ci = bootstrap_mean_ci(group["area"], group["subject_id"], n_boot=n_boot, seed=seed)
        rows.append(
            {
                "input_mode": mode,
                "method": method,
                "variant": variant,
                "n_scans": int(group["scan_id"].nunique()),
                "n_subjects": ci.n_subjects,
                "mean_area": ci.mean,
                "ci_low": ci.ci_low,
                "ci_high": ci.ci_high,
                "share_above_random": float(np.mean(group["area"] > 0)),
                "protocol": settings.protocol(),
            }
        )
    return pd.DataFrame(rows)


#: A champion version's stored rows under the same protocol, computed after its held-out rows.
STORED = """
    SELECT * EXCLUDE (model_name, model_version, computed_at) FROM method_faithfulness
    WHERE input_mode = $mode AND model_version = $version AND protocol = $protocol
      AND computed_at >= $rows_at
"""


def _still_current(
    warehouse: Warehouse, frame: pd.DataFrame, settings: FaithfulnessSettings
) -> pd.DataFrame:
    """The stored ``method_faithfulness`` rows of each mode whose held-out saliency rows have not
    changed since they were computed (same champion version, protocol, methods and scan counts):
    a summary re-run after an unlabelled arrival need not delete layers again."""
    if not warehouse.table_exists("method_faithfulness"):
        return pd.DataFrame()
    kept = []
    held = frame[frame["explained_by"] == HELD_OUT]
    for (mode, version), rows in held.groupby(["input_mode", "model_version"]):
        params = {"mode": mode, "version": version, "protocol": settings.protocol()}
        stored = warehouse.query(STORED, params | {"rows_at": rows["computed_at"].max()})
        expected = {m: {n} for m, n in rows.groupby("method")["scan_id"].nunique().items()}
        if expected == {m: set(n) for m, n in stored.groupby("method")["n_scans"]}:
            kept.append(stored)
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()


def champion_faithfulness(
    frame: pd.DataFrame,
    *,
    tracking: Tracking,
    warehouse: Warehouse,
    paths: LayerPaths,
    settings: FaithfulnessSettings,
    config_for: ConfigFor,
    n_boot: int = 2000,
) -> pd.DataFrame:
    """The ``method_faithfulness`` rows of the champion rows in ``frame`` (without the model
    columns the summary adds): ``held_out_faithfulness`` summarized by ``faithfulness_table``,
    for the modes whose stored rows are not still current."""
    kept = _still_current(warehouse, frame, settings)
    done = set(kept["input_mode"]) if not kept.empty else set()
    per_scan = held_out_faithfulness(
        frame[~frame["input_mode"].isin(done)],
        tracking=tracking,
        warehouse=warehouse,
        paths=paths,
        settings=settings,
        config_for=config_for,
    )
    fresh = faithfulness_table(per_scan, settings, n_boot=n_boot)
    return pd.concat([t for t in (kept, fresh) if not t.empty], ignore_index=True)
