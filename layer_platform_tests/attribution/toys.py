"""Seeded toy models and label maps whose attributions can be worked out by hand."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class VoxelLinear(nn.Module):
    """``logit = sum(w * x) + b``: gradient ``w``, IG (zero baseline) ``w * x``, ablation deltas
    ``sum over the layer of w * (x - fill)``. Counts forward calls and samples seen."""

    def __init__(self, weight: Tensor, bias: float = 0.0, *, column: bool = False):
        super().__init__()
        self.weight = nn.Parameter(weight.clone().float())
        self.bias = nn.Parameter(torch.tensor(float(bias)))
        self.column = column
        self.calls = 0
        self.samples = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.samples += x.shape[0]
        out = (x * self.weight).sum(dim=(1, 2, 3, 4)) + self.bias
        return out[:, None] if self.column else out


class TinyConvNet(nn.Module):
    """conv -> ReLU -> strided conv (the Grad-CAM target) -> ReLU -> pool -> linear, (N, 1)."""

    def __init__(self, in_channels: int = 1, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv3d(in_channels, 4, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(4, 3, kernel_size=3, stride=2, padding=1)
        self.head = nn.Linear(3, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(h.mean(dim=(2, 3, 4)))


def tiny_label_map() -> np.ndarray:
    """4 x 6 x 2 (lateral, depth, sweep): lateral column 0 is background; depth rows are
    dermis, superficial fat, superficial fascia, deep fat, muscle, muscle (no deep fascia).
    Layers 1-4 have 6 voxels each, muscle 12; 36 tissue voxels."""
    labels = np.zeros((4, 6, 2), dtype=np.int64)
    labels[1:] = np.array([1, 2, 3, 4, 6, 6])[None, :, None]
    return labels


def six_layer_map() -> np.ndarray:
    """4 x 7 x 2: lateral column 0 background; depth rows 1..6 then muscle again, so every
    layer is present (6 voxels each, muscle 12)."""
    labels = np.zeros((4, 7, 2), dtype=np.int64)
    labels[1:] = np.array([1, 2, 3, 4, 5, 6, 6])[None, :, None]
    return labels


class LayerInteraction(nn.Module):
    """float64 ``logit = sum(w * x) + (sum(u * x))^2 + max(m_a, m_b)`` where ``m_a``, ``m_b``
    are the input's means over two voxel masks: linear, pairwise-interacting and redundant
    ("either layer suffices") evidence at once. Keeps float64 inputs in float64."""

    def __init__(self, weight: Tensor, interaction: Tensor, a: Tensor, b: Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.double())
        self.interaction = nn.Parameter(interaction.double())
        self.register_buffer("a", a.double() / a.sum())
        self.register_buffer("b", b.double() / b.sum())

    def forward(self, x: Tensor) -> Tensor:
        x = x.double()
        dims = (1, 2, 3, 4)
        linear = (x * self.weight).sum(dim=dims)
        pair = (x * self.interaction).sum(dim=dims) ** 2
        either = torch.maximum((x * self.a).sum(dim=dims), (x * self.b).sum(dim=dims))
        return linear + pair + either
