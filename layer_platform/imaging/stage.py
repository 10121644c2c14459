"""One scan from landing folder to preprocessed files: what the preprocessing asset loops over."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from layer_platform.imaging.preprocess import (
    PreprocessConfig,
    PreprocessedScan,
    preprocess_scan,
    save_preprocessed,
)
from layer_platform.ingestion.landing import load_scan
from layer_platform.locations import Location


def preprocess_landed_scan(
    folder: Path, landing: Path, config: PreprocessConfig, out_dir: Location
) -> PreprocessedScan:
    """Read with the scan's own overrides, preprocess, and write NIfTI files atomically."""
    volumes = load_scan(folder, landing).volumes
    result = preprocess_scan(volumes["bmode"], volumes.get("swe"), volumes.get("layers"), config)
    save_preprocessed(result, out_dir)
    return result


def preprocessing_row(
    scan_id: str, content_hash: str, folder: str, stats: Mapping[str, Any]
) -> dict[str, Any]:
    """One ``preprocessing`` table row from ``PreprocessedScan.stats()`` (asset and bench)."""
    return {
        "scan_id": scan_id,
        "content_hash": content_hash,
        "folder": folder,
        "shape_lateral": stats["shape"][0],
        "shape_depth": stats["shape"][1],
        "shape_sweep": stats["shape"][2],
        "bmode_p1": stats["bmode_p1"],
        "bmode_p99": stats["bmode_p99"],
        "bmode_mean": stats["bmode_mean"],
        "swe_valid_fraction": stats["swe_valid_fraction"],
        "tissue_fraction": stats["tissue_fraction"],
        "all_finite": stats["all_finite"],
        "processed_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
    }
