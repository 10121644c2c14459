"""Per-layer quality figures of a label map: volume, thickness along depth, Dice, order."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from layer_platform.labels import TISSUE_LAYERS, Layer
from layer_platform.segmentation.postprocess import order_ok_fraction

#: Plausible mean thickness (mm) per layer in the lower back; a QC bound, configurable.
PLAUSIBLE_THICKNESS_MM: dict[Layer, tuple[float, float]] = {
    Layer.DERMIS: (0.5, 5.0),
    Layer.SUPERFICIAL_FAT: (0.5, 30.0),
    Layer.SUPERFICIAL_FASCIA: (0.1, 3.0),
    Layer.DEEP_FAT: (0.3, 25.0),
    Layer.DEEP_FASCIA: (0.2, 4.0),
    Layer.MUSCLE: (2.0, 80.0),
}
#: Columns that must be in anatomical order for a segmentation to pass QC.
MIN_ORDER_OK = 0.99


@dataclass(frozen=True)
class LayerQC:
    """One row of the ``segmentation_qc`` table (without scan id)."""

    layer: str
    layer_index: int
    n_voxels: int
    volume_ml: float
    thickness_mean_mm: float | None
    thickness_sd_mm: float | None
    dice: float | None
    order_ok: bool

    def as_row(self) -> dict:
        return asdict(self)


def dice_per_layer(pred: np.ndarray, ref: np.ndarray) -> dict[Layer, float]:
    """Dice per tissue layer; NaN when the layer is absent from both maps."""
    scores = {}
    for layer in TISSUE_LAYERS:
        p, r = pred == layer, ref == layer
        total = int(p.sum() + r.sum())
        scores[layer] = 2.0 * float((p & r).sum()) / total if total else float("nan")
    return scores


def layer_qc(
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    reference: np.ndarray | None = None,
) -> list[LayerQC]:
    """QC rows for the six layers; thickness = voxels per column × depth spacing."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    ordered = order_ok_fraction(labels) >= MIN_ORDER_OK
    dice = dice_per_layer(labels, reference) if reference is not None else {}
    rows = []
    for layer in TISSUE_LAYERS:
        mask = labels == layer
        per_column = mask.sum(axis=1) * spacing[1]
        present = per_column[per_column > 0]
        rows.append(
            LayerQC(
                layer=layer.key,
                layer_index=int(layer),
                n_voxels=int(mask.sum()),
                volume_ml=float(mask.sum()) * voxel_ml,
                thickness_mean_mm=float(present.mean()) if present.size else None,
                thickness_sd_mm=float(present.std()) if present.size else None,
                dice=dice.get(layer),
                order_ok=ordered,
            )
        )
    return rows


def qc_problems(
    rows: list[LayerQC],
    order_fraction: float,
    plausible: dict[Layer, tuple[float, float]] = PLAUSIBLE_THICKNESS_MM,
) -> dict[str, list[str]]:
    """Why a segmentation should not feed saliency, per QC check (all empty: it passes)."""
    problems: dict[str, list[str]] = {
        "anatomical_order": [],
        "all_layers_present": [],
        "plausible_thickness": [],
    }
    if order_fraction < MIN_ORDER_OK:
        problems["anatomical_order"].append(
            f"only {order_fraction:.1%} of columns in anatomical order"
        )
    for row in rows:
        if row.n_voxels == 0:
            problems["all_layers_present"].append(f"{row.layer} missing")
            continue
        low, high = plausible[Layer(row.layer_index)]
        if row.thickness_mean_mm is not None and not low <= row.thickness_mean_mm <= high:
            problems["plausible_thickness"].append(
                f"{row.layer} mean thickness {row.thickness_mean_mm:.2f} mm outside {low}–{high} mm"
            )
    return problems


def dice_markdown(dice: dict[Layer, float]) -> str:
    """Held-out Dice per layer and their mean, as a Markdown table."""
    rows = "\n".join(f"| {layer.key} | {value:.3f} |" for layer, value in dice.items())
    mean = float(np.nanmean(list(dice.values())))
    return f"| layer | held-out Dice |\n|---|---|\n{rows}\n| **mean** | **{mean:.3f}** |"
