"""Mid-slice PNG previews and their Markdown form for Dagster metadata."""

from __future__ import annotations

import base64
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from layer_platform.imaging.figures import PNG_SIGNATURE, mid_slices_png, png_to_markdown
from layer_platform.labels import LAYER_COLOURS

SHAPE = (24, 60, 10)
SPACING = (1.0, 0.25, 1.5)


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return np.random.default_rng(0).random(SHAPE).astype(np.float32)


def labels() -> np.ndarray:
    depth_label = np.minimum(np.arange(SHAPE[1]) // 8, 6).astype(np.uint8)
    return np.broadcast_to(depth_label[None, :, None], SHAPE).copy()


@pytest.mark.parametrize(
    ("overlay", "kind"),
    [(None, "labels"), ("labels", "labels"), ("signed", "heat"), ("positive", "heat")],
)
def test_mid_slices_are_small_valid_pngs(volume, overlay, kind):
    maps = {
        None: None,
        "labels": labels(),
        "signed": np.random.default_rng(1).standard_normal(SHAPE),
        "positive": np.random.default_rng(2).random(SHAPE),
    }
    png = mid_slices_png(
        volume, overlay=maps[overlay], overlay_kind=kind, spacing=SPACING, title="scan-001"
    )
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) < 80_000
    width, height = Image.open(io.BytesIO(png)).size
    assert width > height > 100


def rgb_colours(png: bytes) -> set[tuple[int, ...]]:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return {tuple(int(c) for c in pixel) for pixel in np.unique(pixels, axis=0)}


def test_label_overlay_shows_every_layer_colour_in_its_legend(volume):
    expected = {tuple(round(255 * c) for c in to_rgb(colour)) for colour in LAYER_COLOURS.values()}
    assert expected <= rgb_colours(mid_slices_png(volume, overlay=labels()))
    assert not expected & rgb_colours(mid_slices_png(volume))


def test_mismatched_overlay_and_bad_kind_are_refused(volume):
    with pytest.raises(ValueError, match="overlay shape"):
        mid_slices_png(volume, overlay=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="overlay_kind"):
        mid_slices_png(volume, overlay=labels(), overlay_kind="contour")  # type: ignore[arg-type]


def test_figures_leave_no_pyplot_state(volume):
    before = plt.get_fignums()
    mid_slices_png(volume, overlay=labels())
    assert plt.get_fignums() == before


def test_markdown_inlines_the_png_as_a_data_uri(volume):
    png = mid_slices_png(volume)
    markdown = png_to_markdown(png, "scan [left]")
    prefix = "![scan \\[left\\]](data:image/png;base64,"
    assert markdown.startswith(prefix) and markdown.endswith(")")
    assert base64.b64decode(markdown[len(prefix) : -1]) == png
    with pytest.raises(ValueError, match="PNG"):
        png_to_markdown(b"GIF89a", "not a png")


def test_a_paper_resolution_preview_stays_small():
    shape = (128, 352, 48)  # PreprocessConfig.gpu(): the worst case for PNG size
    speckle = np.random.default_rng(4).random(shape, dtype=np.float32)
    heat = np.random.default_rng(5).standard_normal(shape, dtype=np.float32)
    png = mid_slices_png(speckle, overlay=heat, overlay_kind="heat", spacing=(0.25, 0.1, 0.5))
    assert len(png) < 80_000
