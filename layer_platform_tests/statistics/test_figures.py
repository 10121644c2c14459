"""The ranking bar chart draws each layer in the colour the overlays and label files use."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from layer_platform.labels import TISSUE_LAYERS, Layer, layer_rgb
from layer_platform.statistics.figures import ranking_bars_png


def test_bars_use_the_shared_layer_colours_and_mark_the_top_layer() -> None:
    scores = np.linspace(0.1, 0.6, len(TISSUE_LAYERS))
    ranking = pd.DataFrame(
        {
            "input_mode": "bmode",
            "method": "saliency",
            "layer": [layer.key for layer in TISSUE_LAYERS],
            "score": scores,
            "ci_low": scores - 0.05,
            "ci_high": scores + 0.05,
            "rank": [6, 5, 4, 3, 1, 2],  # deep fascia first
        }
    )
    image = Image.open(io.BytesIO(ranking_bars_png(ranking, ["saliency"]))).convert("RGB")
    pixels = {tuple(p) for p in np.asarray(image).reshape(-1, 3)}
    assert layer_rgb(Layer.DEEP_FASCIA) in pixels  # opaque: the top layer
    faded = [layer for layer in TISSUE_LAYERS if layer != Layer.DEEP_FASCIA]
    assert not any(layer_rgb(layer) in pixels for layer in faded)
