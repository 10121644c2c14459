"""The ``cohort`` reference of the controls: per mode, their mean input per layer and channel.

Layer ablation asks "what if this layer looked like a control's?"; the answer needs the
controls' layer means, read from their preprocessed volumes and QC-passed segmentations.
"""

from __future__ import annotations

import numpy as np

from layer_platform.attribution.scan_profile import control_layer_means
from layer_platform.classification.modes import mode_input, no_signal_channels
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.io import read_label_map
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.queries import CONTROL_SCANS
from layer_platform.warehouse.store import Warehouse


def control_tables(
    warehouse: Warehouse, paths: LayerPaths, modes: list[str]
) -> dict[str, np.ndarray | None]:
    """Per mode, the controls' mean input per layer and channel ``(6, C)``; None without
    controls (the mode then falls back to the ``layer_mean`` baseline)."""
    controls = warehouse.query(CONTROL_SCANS).to_dict("records")
    examples: dict[str, list] = {mode: [] for mode in modes}
    for row in controls:
        stored = load_preprocessed(paths.artifacts / "preprocessed" / row["scan_id"])
        labels = read_label_map(row["path"])
        for mode in modes:
            x = mode_input(mode, stored)
            if x is not None:
                examples[mode].append((x, labels))
    return {
        mode: (
            control_layer_means(found, no_signal_channels=no_signal_channels(mode))
            if found
            else None
        )
        for mode, found in examples.items()
    }
