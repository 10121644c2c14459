"""One bad scan never fails its batch or the run (issue #18), on the ``from_scratch`` runs.

The landing zone holds every case of the bad-input matrix and ``NO_TISSUE``, a readable volume
without tissue: intake accepts it, preprocessing's blocking ``non_empty_tissue`` check refuses
it. The platform run still exits 0 (the fixture asserts it), quarantines each case with its
reason, names the no-tissue scan with its stage, and carries every other scan through to
``layer_saliency``.
"""

from __future__ import annotations

import pytest

from layer_platform.warehouse.pending import PENDING_PREPROCESSING
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.ingestion.test_bad_input_matrix import assert_quarantined
from layer_platform_tests.reliability.conftest import NO_TISSUE, FromScratch


@pytest.mark.slow
def test_a_scan_without_tissue_is_quarantined_and_the_rest_reach_saliency(
    from_scratch: FromScratch,
) -> None:
    paths, log = from_scratch.homes[0], from_scratch.logs[0]
    warehouse = Warehouse(paths.warehouse)
    refused = warehouse.query("SELECT * FROM quarantine WHERE scan_id = ?", [NO_TISSUE])
    assert refused[["stage", "reason"]].to_dict("records") == [
        {"stage": "preprocessing", "reason": "preprocessing: check non_empty_tissue"}
    ]
    assert f"quarantined at preprocessing: {NO_TISSUE} ({NO_TISSUE})" in log.read_text()
    for table in ("preprocessing", "segmentations", "layer_saliency"):
        found = warehouse.query(f"SELECT count(*) AS n FROM {table} WHERE scan_id = ?", [NO_TISSUE])
        assert found["n"].iloc[0] == 0, f"{NO_TISSUE} reached {table}"
    assert NO_TISSUE not in set(warehouse.query(PENDING_PREPROCESSING)["scan_id"]), (
        "a refused scan is not retried until its files change"
    )
    attributed = set(warehouse.query("SELECT DISTINCT scan_id FROM layer_saliency")["scan_id"])
    segmented = warehouse.query("SELECT scan_id FROM segmentations WHERE qc_passed")["scan_id"]
    registered = set(warehouse.query("SELECT scan_id FROM scans")["scan_id"])
    assert attributed == set(segmented) and len(attributed) >= 10
    assert set(warehouse.query("SELECT scan_id FROM preprocessing")["scan_id"]) == registered - {
        NO_TISSUE
    }


@pytest.mark.slow
def test_every_bad_input_case_is_quarantined_in_one_full_run(from_scratch: FromScratch) -> None:
    """The run that exited 0 and reached ``layer_saliency`` (above) quarantined each case of the
    bad-input matrix at intake, naming its scan and cause, and registered none of them."""
    warehouse = Warehouse(from_scratch.homes[0].warehouse)
    at_intake = warehouse.query(
        "SELECT folder, scan_id, reason FROM quarantine WHERE stage = 'ingestion'"
    )
    assert_quarantined(at_intake, from_scratch.bad_cases)
    folders = set(warehouse.query("SELECT folder FROM scans")["folder"])
    assert not folders & set(from_scratch.bad_cases)
