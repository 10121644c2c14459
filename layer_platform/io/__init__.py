"""Scan volume files in and out: every landing format to one canonical Volume, and back.

``read_volume`` returns (lateral, depth, sweep) arrays with spacing in mm and PHI-free metadata;
``write_volume`` writes atomically. Nothing here imports Dagster.
"""

from layer_platform.io.formats import SUPPORTED_EXTENSIONS, volume_extension
from layer_platform.io.readers import read_label_map, read_volume
from layer_platform.io.volume import Volume
from layer_platform.io.writers import write_volume

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Volume",
    "read_label_map",
    "read_volume",
    "volume_extension",
    "write_volume",
]
