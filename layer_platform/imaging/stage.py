"""One scan from landing folder to preprocessed files: what the preprocessing asset loops over."""

from __future__ import annotations

from pathlib import Path

from layer_platform.imaging.preprocess import (
    PreprocessConfig,
    PreprocessedScan,
    preprocess_scan,
    save_preprocessed,
)
from layer_platform.ingestion.landing import load_scan


def preprocess_landed_scan(
    folder: Path, landing: Path, config: PreprocessConfig, out_dir: Path
) -> PreprocessedScan:
    """Read with the scan's own overrides, preprocess, and write NIfTI files atomically."""
    volumes = load_scan(folder, landing).volumes
    result = preprocess_scan(volumes["bmode"], volumes.get("swe"), volumes.get("layers"), config)
    save_preprocessed(result, out_dir)
    return result
