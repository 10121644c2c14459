"""A tiny warehouse written through the real ``Warehouse`` store, without running the pipeline.

Six subjects, two scans each: four subjects in two folds, two held out for test; every second
subject's scans carry reference layers. The preprocessed NIfTI files are written too (8 voxels
a side), so exports that point at them can be opened.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from layer_platform.imaging.preprocess import PreprocessedScan, save_preprocessed
from layer_platform.labels import TISSUE_LAYERS
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.store import Replacement, Warehouse

NOW = dt.datetime(2026, 1, 1, 12, 0, 0)
#: subject → (pain label, fold or None for test, annotated)
SUBJECTS: dict[str, tuple[str, int | None, bool]] = {
    "P01": ("MP", 0, True),
    "P02": ("control", 0, False),
    "P03": ("MP", 1, True),
    "P04": ("control", 1, False),
    "P05": ("MP", None, True),
    "P06": ("control", None, False),
}
SIDES = ("L", "R")
SHAPE = (8, 8, 8)


def scan_id(subject: str, side: str) -> str:
    return f"{subject}-{side}"


def scan_row(subject: str, side: str, label: str, annotated: bool) -> dict:
    return {
        "scan_id": scan_id(subject, side),
        "subject_id": subject,
        "label": label,
        "side": side,
        "acquired_at": dt.date(2026, 1, 1),
        "site": "A",
        "device": "sim",
        "folder": scan_id(subject, side),
        "format": "nifti",
        "shape_lateral": SHAPE[0],
        "shape_depth": SHAPE[1],
        "shape_sweep": SHAPE[2],
        "spacing_lateral_mm": 0.5,
        "spacing_depth_mm": 0.25,
        "spacing_sweep_mm": 1.0,
        "dtype": "float32",
        "has_swe": side == "L",
        "has_reference_layers": annotated,
        "content_hash": "0" * 16,
        "fingerprint": "0" * 16,
        "metadata": None,
        "ingested_at": NOW,
    }


def ranking_rows() -> list[dict]:
    layers = ("deep_fascia", "muscle", "dermis")
    return [
        {
            "input_mode": mode,
            "method": method,
            "is_default_method": method == "ablation",
            "layer": layer,
            "rank": rank,
            "score": 1.0 / rank,
            "ci_low": 0.5 / rank,
            "ci_high": 1.5 / rank,
            "n_subjects": 4,
            "subgroup": "MP",
            "stands_out": rank == 1,
            "verdict": "deep_fascia stands out" if rank == 1 else "",
            "model_name": f"layer-classifier-{mode}",
            "model_version": "3",
            "computed_at": NOW,
        }
        for mode in ("bmode", "bmode_swe")
        for method in ("ablation", "integrated_gradients")
        for rank, layer in enumerate(layers, start=1)
    ]


def write_preprocessed(paths: LayerPaths, sid: str, has_swe: bool, annotated: bool) -> None:
    rng = np.random.default_rng(len(sid))
    bmode = rng.random(SHAPE, dtype=np.float32)
    layers = (np.arange(SHAPE[1]) * len(TISSUE_LAYERS) // SHAPE[1] + 1).astype(np.uint8)
    save_preprocessed(
        PreprocessedScan(
            bmode=bmode,
            swe=bmode * 20 if has_swe else None,
            swe_valid=np.ones(SHAPE, dtype=bool) if has_swe else None,
            layers=np.broadcast_to(layers[None, :, None], SHAPE).copy() if annotated else None,
            spacing=(0.5, 0.25, 1.0),
        ),
        paths.artifacts / "preprocessed" / sid,
    )


def build(paths: LayerPaths, *, files: bool = False) -> Warehouse:
    """Write scans, preprocessing, cohort_split, layer_ranking and quarantine rows."""
    scans, split = [], []
    for subject, (label, fold, annotated) in SUBJECTS.items():
        for side in SIDES:
            row = scan_row(subject, side, label, annotated)
            scans.append(row)
            split.append(
                {
                    "scan_id": row["scan_id"],
                    "subject_id": subject,
                    "label": label,
                    "role": "test" if fold is None else "development",
                    "fold": fold,
                }
            )
            if files:
                write_preprocessed(paths, row["scan_id"], row["has_swe"], annotated)
    quarantine = [
        {
            "folder": "bad-01",
            "scan_id": None,
            "reason": "scan.json: missing key 'label'",
            "detected_at": NOW,
        }
    ]
    warehouse = Warehouse(paths.warehouse)
    warehouse.replace_all(
        [
            Replacement("scans", scans, key=None),
            Replacement("cohort_split", split, key=None),
            Replacement("layer_ranking", ranking_rows(), key=None),
            Replacement("quarantine", quarantine, key=None),
        ]
    )
    return warehouse
