"""Small PNG previews for Dagster metadata: three orthogonal mid-slices, optional overlay.

Figures are built on a bare ``matplotlib.figure.Figure`` with the Agg canvas, never through
``pyplot``, so no global figure registry or backend switch leaks into the process (Dagster runs
many assets in one worker). PNGs are palette-quantised to stay well under ~80 KB, small enough
to inline in the event log as a base64 data URI.
"""

from __future__ import annotations

import base64
import io
from typing import Literal, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from layer_platform.labels import LAYER_COLOURS, MAX_LABEL, TISSUE_LAYERS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Palette size of the saved PNG: grey B-mode plus an overlay, at a fraction of RGBA's bytes.
PNG_COLOURS = 256
_LABEL_CMAP = ListedColormap(
    ["#00000000", *(LAYER_COLOURS[layer] for layer in TISSUE_LAYERS)], name="layer_labels"
)

OverlayKind = Literal["labels", "heat"]


class _View(NamedTuple):
    name: str
    plane: np.ndarray  # rows x columns as drawn
    extent: tuple[float, float, float, float]  # left, right, bottom, top
    xlabel: str
    ylabel: str


def _views(volume: np.ndarray, spacing: tuple[float, float, float]) -> list[_View]:
    """The three mid-slices; depth is always the row axis growing downward (skin at the top)."""
    n_lat, n_dep, n_swe = volume.shape
    lat, dep, swe = (n * s for n, s in zip(volume.shape, spacing, strict=True))
    return [
        _View("lateral x depth", volume[:, :, n_swe // 2].T, (0, lat, dep, 0), "lateral", "depth"),
        _View("sweep x depth", volume[n_lat // 2, :, :], (0, swe, dep, 0), "sweep", "depth"),
        _View("lateral x sweep", volume[:, n_dep // 2, :].T, (0, lat, swe, 0), "lateral", "sweep"),
    ]


def _heat_style(overlay: np.ndarray) -> dict:
    """Signed maps (e.g. Integrated Gradients) get a diverging scale centred at 0."""
    top = float(np.nanpercentile(np.abs(overlay), 99.5)) or 1.0
    if np.nanmin(overlay) < 0:
        return {"cmap": "RdBu_r", "vmin": -top, "vmax": top}
    return {"cmap": "inferno", "vmin": 0.0, "vmax": top}


def mid_slices_png(
    image: np.ndarray,
    *,
    overlay: np.ndarray | None = None,
    overlay_kind: OverlayKind = "labels",
    spacing: tuple[float, float, float] | None = None,
    title: str | None = None,
) -> bytes:
    """The three orthogonal mid-slices of a (lateral, depth, sweep) volume, as PNG bytes.

    Args:
        image: grey volume (B-mode, SWE); shown between its 1st and 99.5th percentile.
        overlay: same-shape label map (``"labels"``: a fixed colour per layer and a legend) or
            attribution map (``"heat"``: colour scale with a colour bar).
        spacing: mm per voxel, so panels keep physical proportions; None draws voxels square.
        title: figure title, e.g. the scan id.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"image must be 3D (lateral, depth, sweep); got shape {image.shape}")
    if overlay is not None and np.shape(overlay) != image.shape:
        raise ValueError(f"overlay shape {np.shape(overlay)} differs from image {image.shape}")
    if overlay_kind not in ("labels", "heat"):
        raise ValueError(f"overlay_kind must be 'labels' or 'heat'; got {overlay_kind!r}")
    unit = "voxels" if spacing is None else "mm"
    spacing = spacing or (1.0, 1.0, 1.0)
    low, high = np.nanpercentile(image, [1.0, 99.5])
    style: dict = {}
    if overlay is not None and overlay_kind == "labels":
        style = {"cmap": _LABEL_CMAP, "vmin": -0.5, "vmax": MAX_LABEL + 0.5, "alpha": 0.45}
    elif overlay is not None:
        style = {**_heat_style(np.asarray(overlay, dtype=np.float32)), "alpha": 0.55}

    fig = Figure(figsize=(8.0, 3.2), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    overlay_planes = (
        [view.plane for view in _views(np.asarray(overlay), spacing)]
        if overlay is not None
        else [None] * 3
    )
    mappable = None
    for ax, view, over in zip(axes, _views(image, spacing), overlay_planes, strict=True):
        ax.imshow(
            view.plane,
            cmap="gray",
            vmin=low,
            vmax=high,
            extent=view.extent,
            interpolation="nearest",
            aspect="equal",
        )
        if over is not None:
            mappable = ax.imshow(
                over, extent=view.extent, interpolation="nearest", aspect="equal", **style
            )
        ax.set_title(view.name, fontsize=8)
        ax.set_xlabel(f"{view.xlabel} ({unit})", fontsize=7)
        ax.set_ylabel(f"{view.ylabel} ({unit})", fontsize=7)
        ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    if overlay is not None and overlay_kind == "labels":
        handles = [Patch(color=LAYER_COLOURS[layer], label=layer.key) for layer in TISSUE_LAYERS]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=len(handles),
            fontsize=6,
            frameon=False,
        )
    elif mappable is not None:
        fig.colorbar(mappable, ax=list(axes), shrink=0.8).ax.tick_params(labelsize=6)
    return _quantised_png(fig)


def _quantised_png(fig: Figure) -> bytes:
    """Render ``fig`` and save it as a palette PNG (lossy only in colour count).

    Maximum-coverage quantisation keeps rare exact colours (legend swatches) that median cut
    would merge into the overlay's blends.
    """
    canvas = fig.canvas
    canvas.draw()
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
    buffer = io.BytesIO()
    palette = rgb.quantize(colors=PNG_COLOURS, method=Image.Quantize.MAXCOVERAGE)
    palette.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def png_to_markdown(png: bytes, alt: str) -> str:
    """A Markdown image with the PNG inlined as a data URI (renders in ``MetadataValue.md``)."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("png_to_markdown needs PNG bytes (they start with the PNG signature)")
    safe_alt = alt.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return f"![{safe_alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
