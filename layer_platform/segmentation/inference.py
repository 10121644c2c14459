"""Segment a preprocessed B-mode volume with a trained network."""

from __future__ import annotations

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn


def segment_volume(
    model: nn.Module,
    image: np.ndarray,
    device: torch.device,
    roi_size: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Argmax label map (uint8, same shape as ``image``).

    With ``roi_size`` smaller than the volume (a GPU-resolution scan on a model trained on
    patches) MONAI's sliding-window inference stitches overlapping windows.
    """
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        if roi_size is not None and any(n > r for n, r in zip(image.shape, roi_size, strict=True)):
            logits = sliding_window_inference(
                x, roi_size, sw_batch_size=2, predictor=model, overlap=0.25
            )
        else:
            logits = model(x)
    model.train(was_training)
    return logits.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()
