"""Gate 3 from the warehouse: stored data-randomization results reach the summary's verdicts
the way ``saliency_summary`` reads them (``queries.data_randomization_passed``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from layer_platform.attribution.data_randomization import PROTOCOL
from layer_platform.statistics import RankingSpec, ranking_rows
from layer_platform.timestamps import utc_now
from layer_platform.warehouse.pending import summary_pending
from layer_platform.warehouse.queries import data_randomization_passed
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.saliency.test_ranking import passing, saliency_frame

VERSIONS = {"bmode": "3"}


def _store(warehouse: Warehouse, passed: dict[str, bool], *, seed: int = 0, version="3") -> None:
    rows = [
        {
            "input_mode": "bmode",
            "method": method,
            "model_name": "layer-classifier-bmode",
            "model_version": version,
            "permutation_seed": seed,
            "protocol": PROTOCOL,
            "n_subjects": 16,
            "n_tests": 42,
            "standout_layer": None if ok else "muscle",
            "holm_p": 0.8 if ok else 0.01,
            "passed": ok,
            "computed_at": utc_now(),
        }
        for method, ok in passed.items()
    ]
    scope = {"model_version": version, "permutation_seed": seed}
    warehouse.replace(
        "data_randomization_checks", rows, key="input_mode", keys=["bmode"], scope=scope
    )


def _verdicts(warehouse: Warehouse) -> dict[str, str]:
    """Each method's verdict on a frame where deep fascia clearly stands out and every other
    gate passes, with gate 3 read from the warehouse."""
    evidence = passing(
        modes=("bmode",),
        data_randomization=data_randomization_passed(warehouse, VERSIONS, protocol=PROTOCOL),
    )
    ranking = ranking_rows(
        saliency_frame("deep_fascia"), RankingSpec("layer_ablation", evidence), n_boot=200
    )
    return dict(zip(ranking["method"], ranking["verdict"], strict=False))


def test_stored_results_pass_or_block_the_verdict(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    warehouse.ensure_schema()
    verdicts = _verdicts(warehouse)
    assert all(v.endswith("data randomization not run") for v in verdicts.values()), verdicts

    _store(warehouse, {"layer_ablation": True, "integrated_gradients": False})
    verdicts = _verdicts(warehouse)
    assert verdicts["layer_ablation"].startswith("deep_fascia stands out")
    assert verdicts["layer_ablation"].endswith("data randomization passed")
    assert verdicts["integrated_gradients"] == (
        "no layer stands out: a classifier trained on permuted labels also gives a standing-out"
        " layer (data-randomization check)"
    )

    # another seed that failed blocks too; another champion version's rows count for nothing
    _store(warehouse, {"layer_ablation": False}, seed=1)
    _store(warehouse, {"integrated_gradients": True}, version="2")
    verdicts = _verdicts(warehouse)
    assert all(v.endswith("(data-randomization check)") for v in verdicts.values()), verdicts


def test_a_new_result_makes_the_summary_pending(tmp_path: Path) -> None:
    """The summary reruns (``layer-platform run``) once ``sanity`` stored a result."""
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    warehouse.ensure_schema()
    now = utc_now()
    with warehouse.connect() as con:  # one champion row, summarized after it was computed
        con.execute(
            "INSERT INTO layer_saliency (scan_id, subject_id, input_mode, method, model_name,"
            " model_version, layer, layer_index, n_voxels, volume_fraction,"
            " segmentation_source, computed_at) VALUES ('s1', 'S1', 'bmode', 'layer_ablation',"
            " 'layer-classifier-bmode', '3', 'muscle', 6, 1, 1.0, 'reference', ?)",
            [now - dt.timedelta(hours=1)],
        )
        con.execute(
            "INSERT INTO layer_ranking (input_mode, method, is_default_method, layer, rank,"
            " n_subjects, subgroup, stands_out, verdict, model_name, model_version, computed_at)"
            " VALUES ('bmode', 'layer_ablation', true, 'muscle', 1, 1, 'all', false, 'v',"
            " 'layer-classifier-bmode', '3', ?)",
            [now - dt.timedelta(minutes=30)],
        )
    assert not summary_pending(warehouse, VERSIONS)
    _store(warehouse, {"layer_ablation": True})
    assert summary_pending(warehouse, VERSIONS)
