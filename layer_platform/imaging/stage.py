"""One scan from landing folder to preprocessed files: what the preprocessing batch runs per scan.

The landed bytes must be the ones intake registered (their content hash), and a scan's files
land as a whole folder (staged, then swapped in): after a crash a reader never pairs a new
B-mode with old layers. Per-scan checks refuse the scan (quarantine), never the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layer_platform.batching import ScanCheckFailed, ScanResult, publish_folder
from layer_platform.imaging.figures import mid_slices_png, png_to_markdown
from layer_platform.imaging.preprocess import (
    PreprocessConfig,
    PreprocessedScan,
    preprocess_scan,
    save_preprocessed,
)
from layer_platform.ingestion.intake import files_hash
from layer_platform.ingestion.landing import load_scan
from layer_platform.locations import Location
from layer_platform.timestamps import utc_now
from layer_platform.warehouse.store import Replacement

#: Fraction of voxels that must show tissue (B-mode above the noise floor) in a usable scan.
MIN_TISSUE_FRACTION = 0.2
#: SWE validity below this is reported as a warning (shear waves did not reach the tissue).
MIN_SWE_VALID_FRACTION = 0.3
#: Per-scan checks: name → (blocks the scan, description).
PREPROCESS_CHECKS = {
    "content_hash": (True, "the landed files are the bytes intake registered"),
    "finite_values": (True, "every preprocessed voxel is finite"),
    "expected_shape": (True, "every volume has the configured working shape"),
    "non_empty_tissue": (True, f"at least {MIN_TISSUE_FRACTION:.0%} of voxels show tissue"),
    "swe_validity": (False, f"SWE valid in at least {MIN_SWE_VALID_FRACTION:.0%} of voxels"),
}


@dataclass(frozen=True)
class LandedScan:
    """A registered scan: where it landed and the content hash intake recorded."""

    scan_id: str
    folder: str
    content_hash: str


def prepare_landed_scan(
    folder: Path, landing: Path, config: PreprocessConfig, content_hash: str | None = None
) -> PreprocessedScan:
    """Read with the scan's own overrides and preprocess (nothing written).

    Raises:
        ScanCheckFailed: ``content_hash`` given and the landed files no longer hash to it (a
            re-export after intake: its new bytes are intake's to register first).
    """
    loaded = load_scan(folder, landing)
    # Hashed after reading: bytes changed before or during the read fail the comparison.
    landed = [*loaded.paths.values(), folder / "scan.json"]
    if content_hash is not None and files_hash(landed) != content_hash:
        raise ScanCheckFailed("content_hash")
    volumes = loaded.volumes
    return preprocess_scan(volumes["bmode"], volumes.get("swe"), volumes.get("layers"), config)


def publish_preprocessed(result: PreprocessedScan, out_dir: Location) -> None:
    """Write the scan's files into a staging folder and swap it in as a whole (object storage:
    one whole object per file, in place)."""
    publish_folder(out_dir, lambda folder: save_preprocessed(result, folder, staged=True))


def preprocess_landed_scan(
    folder: Path, landing: Path, config: PreprocessConfig, out_dir: Location
) -> PreprocessedScan:
    """Read, preprocess and publish one scan (the benchmarks' unit of work)."""
    result = prepare_landed_scan(folder, landing, config)
    publish_preprocessed(result, out_dir)
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
        "processed_at": utc_now(),
    }


def failed_checks(row: Mapping[str, Any], shape: tuple[int, int, int]) -> list[str]:
    """The checks of ``PREPROCESS_CHECKS`` (content hash aside) that ``row`` fails."""
    swe = row["swe_valid_fraction"]
    passed = {
        "finite_values": bool(row["all_finite"]),
        "expected_shape": (row["shape_lateral"], row["shape_depth"], row["shape_sweep"]) == shape,
        "non_empty_tissue": row["tissue_fraction"] >= MIN_TISSUE_FRACTION,
        "swe_validity": swe is None or swe >= MIN_SWE_VALID_FRACTION,
    }
    return [name for name, ok in passed.items() if not ok]


def preprocess_batch_scan(
    scan: LandedScan, landing: Path, config: PreprocessConfig, out_dir: Location, preview: bool
) -> ScanResult:
    """One scan of the preprocessing batch: checked, its files staged, its row ready."""
    result = prepare_landed_scan(landing / scan.folder, landing, config, scan.content_hash)
    stats = result.stats()
    row = preprocessing_row(scan.scan_id, scan.content_hash, scan.folder, stats)
    failed = failed_checks(row, config.target_shape)
    blocking = [name for name in failed if PREPROCESS_CHECKS[name][0]]
    if blocking:
        raise ScanCheckFailed(blocking[0])
    markdown = {}
    if preview:
        png = mid_slices_png(
            result.bmode, overlay=result.layers, spacing=config.target_spacing, title=scan.scan_id
        )
        markdown["mid_slices"] = png_to_markdown(png, scan.scan_id)
    return ScanResult(
        writes=[Replacement("preprocessing", [row], key="scan_id", keys=[scan.scan_id])],
        publish=lambda: publish_preprocessed(result, out_dir),
        metadata={
            "path": str(out_dir),
            "shape": str(stats["shape"]),
            "spacing_mm": str(tuple(round(s, 3) for s in config.target_spacing)),
            "bmode_mean": stats["bmode_mean"],
            "swe_valid_fraction": stats["swe_valid_fraction"],
            "content_hash": scan.content_hash[:16],
        },
        markdown=markdown,
        warnings=failed,
    )
