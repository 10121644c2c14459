"""GX suites: a good frame passes; each broken property fails with a message that names it."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from layer_platform.labels import TISSUE_LAYERS
from layer_platform.quality.expectations import (
    SuiteOutcome,
    validate_layer_saliency,
    validate_segmentation_qc,
)

NOW = dt.datetime(2026, 1, 1)


def qc_frame(scans: tuple[str, ...] = ("S1", "S2")) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "scan_id": scan,
                "layer": layer.key,
                "layer_index": int(layer),
                "n_voxels": 100,
                "volume_ml": 0.5,
                "thickness_mean_mm": 1.5,
                "thickness_sd_mm": 0.2,
                "dice": 0.9 if scan == "S1" else None,  # S2 has no reference annotation
                "order_ok": True,
            }
            for scan in scans
            for layer in TISSUE_LAYERS
        ]
    )


def segmentations_frame(scans: tuple[str, ...] = ("S1", "S2")) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "scan_id": scan,
                "segmentation_source": "model",
                "model_name": "layer-segmenter",
                "model_version": "1",
                "raw_order_ok_fraction": 0.97,
                "order_ok_fraction": 1.0,
                "qc_passed": True,
                "problems": None,
                "path": f"/x/{scan}/segmentation.nii",
                "computed_at": NOW,
            }
            for scan in scans
        ]
    )


SHARES = np.array([0.05, 0.1, 0.05, 0.4, 0.1, 0.3])


def saliency_frame() -> pd.DataFrame:
    rows = []
    for scan in ("S1", "S2"):
        for mode in ("bmode", "swe"):
            for method in ("gradient", "layer_ablation"):
                for layer, share in zip(TISSUE_LAYERS, SHARES, strict=True):
                    rows.append(
                        {
                            "scan_id": scan,
                            "subject_id": f"P{scan}",
                            "label": "MP",
                            "input_mode": mode,
                            "method": method,
                            "model_name": f"layer-classifier-{mode}",
                            "model_version": "3",
                            "layer": layer.key,
                            "layer_index": int(layer),
                            "n_voxels": 1000,
                            "volume_fraction": 1 / 6,
                            "mean_saliency": 0.2,
                            # an ablation's per-layer drops need not add up to 1
                            "saliency_share": share if method == "gradient" else 0.5,
                            "enrichment": share * 6,
                            "ablation_delta": 0.1 if method == "layer_ablation" else None,
                            "segmentation_source": "reference",
                            "explained_by": "out_of_fold",
                            "reference_sha256": "0" * 64,
                            "ablation_delta_bmode": None,
                            "ablation_delta_swe": None,
                            "joint_ablation_delta": None,
                            "swe_coverage": 0.5 if mode == "swe" else None,
                            "mean_saliency_eroded": 0.1,
                            "mean_saliency_dilated": 0.3,
                            "ablation_delta_eroded": None,
                            "ablation_delta_dilated": None,
                            "attribution_settings": "baseline=cohort matching=flat",
                            "ablation_delta_bmode_eroded": None,
                            "ablation_delta_bmode_dilated": None,
                            "ablation_delta_swe_eroded": None,
                            "ablation_delta_swe_dilated": None,
                            "computed_at": NOW,
                        }
                    )
    return pd.DataFrame(rows)


def failed(outcomes: list[SuiteOutcome]) -> str:
    return "\n".join(o.describe_failures() for o in outcomes if not o.success)


def test_good_segmentation_frames_pass() -> None:
    outcomes = validate_segmentation_qc(qc_frame(), segmentations_frame())
    assert [o.suite for o in outcomes] == ["segmentation_qc", "segmentations"]
    assert all(o.success for o in outcomes), failed(outcomes)
    assert "| expect_column_values_to_be_between | dice | ✅ |" in outcomes[0].markdown()


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("dice", 1.2, "expect_column_values_to_be_between(dice) failed, observed 1 unexpected"),
        ("dice", -0.1, "(dice) failed"),
        ("thickness_mean_mm", -1.0, "(thickness_mean_mm) failed"),
        ("thickness_mean_mm", np.inf, "(thickness_mean_mm) failed"),
        ("thickness_sd_mm", -np.inf, "(thickness_sd_mm) failed"),
    ],
)
def test_out_of_range_qc_values_fail_by_name(column: str, value: float, expected: str) -> None:
    qc = qc_frame()
    qc[column] = qc[column].astype(float)
    qc.loc[3, column] = value
    outcomes = validate_segmentation_qc(qc, segmentations_frame())
    assert not outcomes[0].success
    assert expected in outcomes[0].describe_failures()
    assert outcomes[1].success


def test_a_duplicated_qc_row_fails_uniqueness() -> None:
    qc = qc_frame()
    outcomes = validate_segmentation_qc(pd.concat([qc, qc.iloc[:1]]), segmentations_frame())
    assert "expect_compound_columns_to_be_unique(scan_id, layer_index) failed" in (
        outcomes[0].describe_failures()
    )


def test_order_fraction_and_one_row_per_scan() -> None:
    summaries = segmentations_frame()
    summaries.loc[0, "order_ok_fraction"] = 1.5
    message = validate_segmentation_qc(qc_frame(), summaries)[1].describe_failures()
    assert "(order_ok_fraction) failed, observed 1 unexpected, e.g. [1.5]" in message

    doubled = pd.concat([segmentations_frame(), segmentations_frame().iloc[:1]])
    message = validate_segmentation_qc(qc_frame(), doubled)[1].describe_failures()
    assert "expect_column_values_to_be_unique(scan_id) failed" in message


def test_good_saliency_frame_passes() -> None:
    outcomes = validate_layer_saliency(saliency_frame())
    assert [o.suite for o in outcomes] == ["layer_saliency", "layer_saliency_shares"]
    assert all(o.success for o in outcomes), failed(outcomes)


def test_a_zero_map_with_null_shares_passes() -> None:
    frame = saliency_frame()
    zero = (frame["scan_id"] == "S1") & (frame["method"] == "gradient")
    frame["saliency_share"] = frame["saliency_share"].where(~zero)
    assert all(o.success for o in validate_layer_saliency(frame))


def test_a_layer_without_measured_swe_has_a_null_share_and_the_rest_sum_to_one() -> None:
    frame = saliency_frame()
    unmeasured = (frame["input_mode"] == "swe") & (frame["layer"] == "dermis")
    rescaled = frame["saliency_share"] / (1 - SHARES[0])
    is_map = (frame["input_mode"] == "swe") & (frame["method"] == "gradient")
    frame["saliency_share"] = frame["saliency_share"].where(~is_map, rescaled)
    frame.loc[unmeasured, ["saliency_share", "mean_saliency"]] = np.nan
    frame.loc[unmeasured, "swe_coverage"] = 0.0
    assert all(o.success for o in validate_layer_saliency(frame)), "null share, coverage 0"
    frame.loc[unmeasured & (frame["method"] == "gradient"), "saliency_share"] = SHARES[0]
    assert not validate_layer_saliency(frame)[1].success, "the shares now sum past 1"


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("saliency_share", 1.5, "(saliency_share) failed"),
        ("volume_fraction", -0.2, "(volume_fraction) failed"),
        ("volume_fraction", None, "expect_column_values_to_not_be_null(volume_fraction) failed"),
        ("mean_saliency", 2.0, "(mean_saliency) failed"),
        ("swe_coverage", 1.2, "(swe_coverage) failed"),
        ("mean_saliency_dilated", 1.5, "(mean_saliency_dilated) failed"),
        ("model_version", None, "expect_column_values_to_not_be_null(model_version) failed"),
    ],
)
def test_broken_saliency_rows_fail_by_name(column: str, value: object, expected: str) -> None:
    frame = saliency_frame()
    if value is None:
        frame[column] = frame[column].astype(object)
    frame.loc[7, column] = value
    rows, _ = validate_layer_saliency(frame)
    assert not rows.success
    assert expected in rows.describe_failures()


def test_shares_not_summing_to_one_fail() -> None:
    frame = saliency_frame()
    frame.loc[0, "saliency_share"] += 1e-4  # S1/bmode/gradient now sums to 1.0001
    _, shares = validate_layer_saliency(frame)
    assert "layer_saliency_shares: expect_column_values_to_be_between(share_sum) failed" in (
        shares.describe_failures()
    )
    frame.loc[0, "saliency_share"] -= 1e-4 - 5e-7  # within the 1e-6 tolerance
    assert validate_layer_saliency(frame)[1].success


def test_duplicate_saliency_rows_fail_and_versions_may_coexist() -> None:
    frame = saliency_frame()
    doubled = pd.concat([frame, frame.iloc[:1]])
    rows, _ = validate_layer_saliency(doubled)
    assert "expect_compound_columns_to_be_unique(" in rows.describe_failures()

    older = frame.assign(model_version="2")  # another version's rows: queryable history
    assert all(o.success for o in validate_layer_saliency(pd.concat([frame, older])))


def test_unknown_columns_fail_the_schema_expectation() -> None:
    rows, _ = validate_layer_saliency(saliency_frame().assign(extra=1))
    assert "expect_table_columns_to_match_set failed" in rows.describe_failures()


def test_loading_the_definitions_does_not_import_great_expectations() -> None:
    """GX (~2 s) is for the runs that validate, not every process that loads the definitions."""
    probe = (
        "import sys, layer_platform.defs.definitions; sys.exit('great_expectations' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0
