"""The segmentation network: a MONAI 3D UNet, 1 B-mode channel in, 7 classes out."""

from __future__ import annotations

from monai.networks.nets import UNet
from torch import nn

from layer_platform.labels import Layer
from layer_platform.segmentation.config import SegmenterConfig

N_CLASSES = len(Layer)


def build_segmenter(config: SegmenterConfig) -> nn.Module:
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=N_CLASSES,
        channels=config.channels,
        strides=config.strides,
        num_res_units=1,
        norm="instance",
    )
