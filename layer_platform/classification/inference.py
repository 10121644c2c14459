"""A trained network prepared for the many forward passes of attribution: batch norm folded
into the convolution before it, no weight gradients, and channels-last weights (oneDNN then
convolves without reordering; benchmark 1, ``channels_last_vs_contiguous``).

In eval mode a batch norm is a fixed affine map per channel, so it folds into the preceding
convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same function
up to float rounding, without a pass over every activation per convolution. Attribution is
nothing but forward passes (and, for the gradient methods, backward passes that need the input's
gradient only): at the CPU grid, two samples per pass on one thread, a forward pass of the
classifier took 26.7 ms per sample folded against 33.9 as trained; benchmark 1 measures it
(``folded_network_vs_trained``).

A block's activation then runs in place on the convolution's output, which nothing else reads
(a convolution's backward needs its input, not its output): one allocation and one write of
every activation fewer per block. On the demo cohort's model-randomization check (layer
ablation through a five-member ensemble) that took a fifth off the time.
"""

from __future__ import annotations

import copy

import torch
from monai.networks.blocks import ADN, Convolution
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: The convolutions a batch norm folds into.
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _foldable(model: nn.Module) -> list[str]:
    """Names of the MONAI ``Convolution`` blocks whose batch norm comes first after the
    convolution (``ADN`` ordering ``N…``) and normalises with running statistics."""
    names = []
    for name, block in model.named_modules():
        conv, adn = getattr(block, "conv", None), getattr(block, "adn", None)
        if not (
            isinstance(block, Convolution)
            and isinstance(conv, _CONVOLUTIONS)
            and isinstance(adn, ADN)
        ):
            continue
        first, norm = next(iter(adn.named_children()), (None, None))
        if first == "N" and isinstance(norm, _BatchNorm) and norm.track_running_stats:
            names.append(name)
    return names


def inference_network(model: nn.Module) -> nn.Module:
    """An eval-mode, channels-last copy of ``model`` with every foldable batch norm folded into
    its convolution, its blocks' activations in place and its parameters frozen; ``model``
    itself when it has nothing to fold.
    ``model`` is never changed, and submodule names are kept: a layer of ``model`` is found in
    the copy by name."""
    names = _foldable(model)
    if not names:
        return model
    folded = copy.deepcopy(model).eval().requires_grad_(False)
    for name in names:
        block = folded.get_submodule(name)
        block.conv = fuse_conv_bn_eval(block.conv, block.adn.N)
        block.adn.N = nn.Identity()
    for block in folded.modules():
        activation = getattr(getattr(block, "adn", None), "A", None)
        if isinstance(block, Convolution) and hasattr(activation, "inplace"):
            activation.inplace = True
    return folded.to(memory_format=torch.channels_last_3d)
