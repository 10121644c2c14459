"""One scan of the segmentation batch: label map, QC rows and summary, ready to commit.

The label map is saved beside the scan's preprocessed B-mode (``segmentation.nii``, written
atomically); preprocessing swaps that folder as a whole, so a re-preprocessed scan never
keeps the old scan's layers. QC failures are recorded (``qc_passed = false``), not quarantined:
saliency skips such scans and the QC tables say why.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from layer_platform.batching import ScanResult
from layer_platform.imaging.figures import mid_slices_png, png_to_markdown
from layer_platform.imaging.native import write_segmentation
from layer_platform.imaging.preprocess import load_preprocessed
from layer_platform.labels import Layer
from layer_platform.segmentation.inference import segment_volume
from layer_platform.segmentation.postprocess import enforce_anatomical_order, order_ok_fraction
from layer_platform.segmentation.qc import dice_per_layer, layer_qc, qc_problems
from layer_platform.timestamps import utc_now
from layer_platform.warehouse.store import Replacement


def segment_batch_scan(
    scan_id: str,
    folder: Path,
    model: torch.nn.Module,
    model_name: str,
    model_version: str,
    device: torch.device,
    *,
    prefer_reference: bool,
    preview: bool,
) -> ScanResult:
    """Segment the preprocessed scan in ``folder``; its rows replace the scan's earlier ones."""
    stored = load_preprocessed(folder)
    raw = segment_volume(model, stored.bmode, device)
    predicted = enforce_anatomical_order(raw)
    use_reference = stored.layers is not None and prefer_reference
    final = stored.layers if use_reference else predicted
    source = "reference" if use_reference else "model"
    rows = layer_qc(final, stored.spacing)
    if stored.layers is not None:
        dice = dice_per_layer(predicted, stored.layers)
        rows = [replace(r, dice=dice[Layer(r.layer_index)]) for r in rows]
    order = order_ok_fraction(final)
    found = qc_problems(rows, order)
    problems = [text for texts in found.values() for text in texts]
    target = folder / "segmentation.nii"
    summary = {
        "scan_id": scan_id,
        "segmentation_source": source,
        "model_name": model_name,
        "model_version": model_version,
        "raw_order_ok_fraction": order_ok_fraction(raw),
        "order_ok_fraction": order,
        "qc_passed": not problems,
        "problems": "; ".join(problems) or None,
        "path": str(target),
        "computed_at": utc_now(),
    }
    markdown = {}
    if preview:
        png = mid_slices_png(stored.bmode, overlay=final, spacing=stored.spacing, title=scan_id)
        markdown["overlay"] = png_to_markdown(png, scan_id)
    return ScanResult(
        writes=[
            Replacement(
                "segmentation_qc",
                [{"scan_id": scan_id, **r.as_row()} for r in rows],
                key="scan_id",
                keys=[scan_id],
            ),
            Replacement("segmentations", [summary], key="scan_id", keys=[scan_id]),
        ],
        publish=lambda: write_segmentation(folder, final, stored),  # + .seg.nrrd, native/
        metadata={"source": source, "qc_passed": not problems, "order_ok_fraction": order},
        markdown=markdown,
        warnings=[name for name, texts in found.items() if texts],
    )
