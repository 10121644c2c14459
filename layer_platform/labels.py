"""The six-layer tissue label contract shared by annotations, segmentations and saliency tables.

Like a MONAI bundle's ``channel_def``, every label map in the platform uses exactly this integer
code, and one colour per layer (``LAYER_COLOURS``): the figures draw with it, and the exported
``.seg.nrrd`` and ITK-SNAP label files carry it with the names, so a segmentation looks the same
in a Dagster preview, in 3D Slicer and in ITK-SNAP.
"""

from __future__ import annotations

from enum import IntEnum


class Layer(IntEnum):
    """Tissue layers from the skin (transducer side) to depth; 0 is background."""

    BACKGROUND = 0
    DERMIS = 1
    SUPERFICIAL_FAT = 2
    SUPERFICIAL_FASCIA = 3
    DEEP_FAT = 4
    DEEP_FASCIA = 5
    MUSCLE = 6

    @property
    def key(self) -> str:
        """The snake_case name used in tables, configs and the simulator (e.g. ``deep_fascia``)."""
        return self.name.lower()

    @property
    def display_name(self) -> str:
        """The name a viewer shows (e.g. ``Deep fascia``)."""
        return self.key.replace("_", " ").capitalize()

    @classmethod
    def from_key(cls, key: str) -> Layer:
        """Parse a layer name such as ``"deep_fascia"``; raise a ValueError listing valid names."""
        try:
            return cls[key.strip().upper()]
        except KeyError:
            valid = ", ".join(layer.key for layer in TISSUE_LAYERS)
            raise ValueError(f"unknown tissue layer {key!r}; expected one of: {valid}") from None


#: The six tissue layers in anatomical order (skin to depth), background excluded.
TISSUE_LAYERS: tuple[Layer, ...] = tuple(layer for layer in Layer if layer != Layer.BACKGROUND)

#: Highest valid label value; anything above it in a label map is a contract violation.
MAX_LABEL: int = int(Layer.MUSCLE)

#: Thin membranes: tiny volume fractions, hardest to segment, the layers the paper points at.
MEMBRANES: tuple[Layer, ...] = (Layer.SUPERFICIAL_FASCIA, Layer.DEEP_FASCIA)

#: Subject-level classification labels in ``scan.json`` (``null`` = unlabelled); MP is positive.
PAIN_LABELS: tuple[str, ...] = ("MP", "control")
POSITIVE_LABEL = "MP"

#: Fixed colour per tissue layer (hex sRGB), for every figure and every exported label map.
LAYER_COLOURS: dict[Layer, str] = {
    Layer.DERMIS: "#ffd166",
    Layer.SUPERFICIAL_FAT: "#f4a261",
    Layer.SUPERFICIAL_FASCIA: "#e63946",
    Layer.DEEP_FAT: "#a855f7",
    Layer.DEEP_FASCIA: "#1d4ed8",
    Layer.MUSCLE: "#06d6a0",
}


def layer_rgb(layer: Layer) -> tuple[int, int, int]:
    """The layer's colour as 0..255 (red, green, blue)."""
    code = LAYER_COLOURS[layer].lstrip("#")
    return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)
