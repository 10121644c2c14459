"""Training augmentation that never disturbs the skin-to-muscle order along depth.

Which layer drives a prediction is read off depth, so depth is never flipped or shifted; lateral
and sweep flips are plausible re-acquisitions (left/right side, sweep direction).
"""

from __future__ import annotations

import torch
from torch import Tensor

from layer_platform.classification.config import ClassifierConfig

#: Axes of a (batch, channel, lateral, depth, sweep) tensor.
LATERAL_DIM, DEPTH_DIM, SWEEP_DIM = 2, 3, 4


def augment_batch(x: Tensor, config: ClassifierConfig, generator: torch.Generator) -> Tensor:
    """Per-sample random lateral/sweep flips, per-channel multiplicative intensity jitter and,
    for two or more channels, modality dropout (one channel set to "no signal", 0).

    Jitter multiplies (never adds) so SWE's invalid voxels stay exactly 0. ``generator`` must
    live on ``x.device``; seeding it makes augmentation reproducible.
    """
    batch, n_channels = x.shape[:2]

    def uniform(*shape: int) -> Tensor:
        return torch.rand(shape, generator=generator, device=x.device)

    for enabled, dim in ((config.flip_lateral, LATERAL_DIM), (config.flip_sweep, SWEEP_DIM)):
        if enabled:
            flip = (uniform(batch) < 0.5).view(batch, 1, 1, 1, 1)
            x = torch.where(flip, x.flip(dim), x)
    if config.intensity_jitter > 0:
        scale = 1 + config.intensity_jitter * (2 * uniform(batch, n_channels) - 1)
        x = x * scale.view(batch, n_channels, 1, 1, 1).to(x.dtype)
    if config.modality_dropout > 0 and n_channels > 1:
        dropped = uniform(batch) < config.modality_dropout
        channel = (uniform(batch) * n_channels).long().clamp(max=n_channels - 1)
        keep = torch.ones(batch, n_channels, device=x.device, dtype=torch.bool)
        keep[dropped, channel[dropped]] = False
        x = x * keep.view(batch, n_channels, 1, 1, 1).to(x.dtype)
    return x
