"""Draw ``docs/img/ranking.png``: the layer-ranking chart the platform shows in the Dagster UI.

The rows are **synthetic**: per-scan ``layer_ablation`` deltas drawn here for a 40-subject
cohort, with pain evidence planted in the deep fascia (B-mode) and the muscle (SWE), as the
demo cohort plants it. They go through the platform's own statistics (``ranking_rows``:
subject-level bootstrap CIs and the verdict gates, here with no check run, so no layer stands
out: ``Evidence()``) and its own chart
(``ranking_bars_png``, the one ``layer_ranking`` carries). No model is trained, so
the picture shows what the output looks like, not a measured result (those are in
docs/results/). Deterministic; run from the repository root:

    .venv/bin/python docs/img/ranking_figure.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from layer_platform.labels import TISSUE_LAYERS
from layer_platform.saliency_names import ABLATION_METHOD
from layer_platform.statistics.figures import ranking_bars_png
from layer_platform.statistics.ranking import RankingSpec, ranking_rows
from layer_platform.statistics.report import format_ranking
from layer_platform.statistics.verdicts import Evidence

OUT = Path(__file__).resolve().parent / "ranking.png"
N_SUBJECTS = 40
#: Mean logit drop in MP scans when the layer is replaced by the control baseline.
PLANTED = {
    "bmode": {"deep_fascia": 2.5},
    "swe": {"muscle": 2.6},
    "bmode_swe": {"muscle": 1.2, "deep_fascia": 0.9},
}


def synthetic_rows(seed: int = 7) -> pd.DataFrame:
    """``layer_saliency``-shaped rows: 2 scans per subject, half the subjects MP."""
    rng = np.random.default_rng(seed)
    records = []
    for mode, planted in PLANTED.items():
        for subject in range(N_SUBJECTS):
            label = "MP" if subject % 2 == 0 else "control"
            severity = rng.uniform(0.5, 1.5) if label == "MP" else 0.0
            for side in ("L", "R"):
                for layer in TISSUE_LAYERS:
                    effect = planted.get(layer.key, 0.0) * severity
                    records.append(
                        {
                            "scan_id": f"S{subject:04d}-{side}",
                            "subject_id": f"S{subject:04d}",
                            "label": label,
                            "input_mode": mode,
                            "method": ABLATION_METHOD,
                            "layer": layer.key,
                            "ablation_delta": effect + rng.normal(0.1, 0.4),
                        }
                    )
    return pd.DataFrame.from_records(records)


def main() -> None:
    ranking = ranking_rows(synthetic_rows(), RankingSpec(ABLATION_METHOD, Evidence()), n_boot=2000)
    OUT.write_bytes(ranking_bars_png(ranking, [ABLATION_METHOD]))
    print(format_ranking(ranking))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
