"""Classifier networks: one MP logit per volume, with a named last conv block for Grad-CAM."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import DenseNet121, ResNet, resnet10
from torch import Tensor, nn

from layer_platform.classification.config import POOLINGS, ClassifierConfig


class GlobalPool3d(nn.Module):
    """Global pooling of a (B, C, L, D, S) map to (B, C) — or (B, 2C) for ``avgmax``.

    Average pooling weighs a feature by the volume it covers, so a thin layer's evidence is
    confounded with its thickness; the max is not. ``avgmax`` concatenates both.
    """

    def __init__(self, kind: str):
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {kind!r}")
        self.kind = kind

    def forward(self, x: Tensor) -> Tensor:
        parts = []
        if self.kind in ("avg", "avgmax"):
            parts.append(x.mean(dim=(2, 3, 4)))
        if self.kind in ("max", "avgmax"):
            parts.append(x.amax(dim=(2, 3, 4)))
        return torch.cat(parts, dim=1)


class SmallCNN3D(nn.Module):
    """A few conv blocks (MONAI ``Convolution`` ×2 each), global pooling, one logit.

    With tens of subjects a ~0.35M-parameter net suits the data: MONAI's ResNet10 has 14M
    parameters and a 3.5x slower training step on the CPU grid, and DenseNet121 cannot pool its
    16 sweep slices at all. ``features`` is an ``nn.Sequential`` of ``block1`` … ``blockN``;
    ``features[-1]`` is the last conv block (see ``last_conv_block``).
    """

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, ...],
        norm: str = "batch",
        dropout: float = 0.0,
        pooling: str = "avg",
    ):
        super().__init__()
        #: What rebuilds this network around saved weights (``tracking/architecture.py``).
        self.hyperparameters = {
            "in_channels": in_channels,
            "channels": list(channels),
            "norm": norm,
            "dropout": dropout,
            "pooling": pooling,
        }
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        width = in_channels
        for i, out in enumerate(channels):
            blocks[f"block{i + 1}"] = nn.Sequential(
                Convolution(3, width, out, strides=1 if i == 0 else 2, act="RELU", norm=norm),
                Convolution(3, out, out, act="RELU", norm=norm),
            )
            width = out
        self.features = nn.Sequential(blocks)
        self.out_channels = width  # of the last block: the Grad-CAM target
        pool = GlobalPool3d(pooling)
        pooled = 2 * width if pooling == "avgmax" else width
        self.head = nn.Sequential(pool, nn.Dropout(dropout), nn.Linear(pooled, 1))

    def forward(self, x: Tensor) -> Tensor:
        # The head runs in float32 under any autocast: a bfloat16 logit keeps ~3 significant
        # digits, enough to tie validation scans and blur the loss early stopping compares.
        features = self.features(x)
        with torch.autocast(x.device.type, enabled=False):
            return self.head(features.float())


class ParallelBranches(nn.Module):
    """Runs every branch on the same input and concatenates their outputs along channels."""

    def __init__(self, branches: Sequence[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class FoldEnsemble(nn.Module):
    """The mean MP logit of the cross-validation fold models, as one network to register.

    Each member was early-stopped on subjects it never trained on; their mean has less of the
    variance a small-data model draws from its initialisation and its subjects than any single
    model, the refit included (see ``ClassifierConfig.final_model``). The members' conv stacks
    run side by side in ``features``, whose output (B, K*C, l, d, s) is every member's last block:
    Grad-CAM on it is the mean of the members' Grad-CAM maps before the ReLU.
    """

    def __init__(self, members: Sequence[SmallCNN3D]):
        super().__init__()
        if not members or not all(isinstance(m, SmallCNN3D) for m in members):
            raise TypeError("a FoldEnsemble is built from one or more SmallCNN3D members")
        widths = {member.out_channels for member in members}
        if len(widths) > 1:
            raise ValueError(f"members must share one last-block width; got {sorted(widths)}")
        #: The members' own hyperparameters: what rebuilds the ensemble around saved weights.
        self.member_hyperparameters = [dict(member.hyperparameters) for member in members]
        self.features = ParallelBranches([member.features for member in members])
        self.heads = nn.ModuleList(member.head for member in members)

    def member_prefixes(self) -> list[tuple[str, str]]:
        """Each member's module names (its conv stack, its head): the model-randomization
        cascade re-initialises the same depth of every member at once."""
        return [(f"features.branches.{i}", f"heads.{i}") for i in range(len(self.heads))]

    @property
    def n_members(self) -> int:
        return len(self.heads)

    def member(self, index: int) -> SmallCNN3D:
        """Member ``index`` (the model of fold ``index``) alone, sharing the ensemble's weights.

        What scores or explains a development scan of fold ``index``: the one member that never
        trained on it (``cross_validate`` builds the ensemble in fold order).
        """
        with torch.device("meta"):  # both parts are replaced: draw no weights (nor the RNG)
            net = SmallCNN3D(**self.member_hyperparameters[index])
        net.features = self.features.branches[index]
        net.head = self.heads[index]
        return net.train(self.training)

    def forward(self, x: Tensor) -> Tensor:
        maps = self.features(x).chunk(len(self.heads), dim=1)
        return torch.stack([head(m) for head, m in zip(self.heads, maps, strict=True)]).mean(0)


def build_classifier(config: ClassifierConfig, in_channels: int) -> nn.Module:
    """The network ``config.architecture`` names; input (B, C, L, D, S), output (B, 1) logits."""
    if config.architecture == "densenet121":
        return DenseNet121(spatial_dims=3, in_channels=in_channels, out_channels=1)
    if config.architecture == "resnet10":
        return resnet10(spatial_dims=3, n_input_channels=in_channels, num_classes=1)
    return SmallCNN3D(in_channels, config.channels, config.norm, config.dropout, config.pooling)


#: DenseNet121 halves each axis five times and its pooling needs >= 2 voxels: below 29 it fails.
_MIN_AXIS_SIZE: dict[str, int] = {"densenet121": 29}


def check_input_shape(config: ClassifierConfig, spatial_shape: tuple[int, ...]) -> None:
    """Fail early and clearly when the volumes are too small for the architecture.

    The default grid's 16-slice sweep is too short for DenseNet121; resample or pad first.
    """
    minimum = _MIN_AXIS_SIZE.get(config.architecture, 1)
    if min(spatial_shape) < minimum:
        raise ValueError(
            f"{config.architecture} needs at least {minimum} voxels on every axis; "
            f"got {tuple(spatial_shape)}"
        )


def last_conv_block(model: nn.Module) -> nn.Module:
    """The last spatial feature stage of a ``build_classifier`` model: the Grad-CAM target.

    For a :class:`FoldEnsemble` it is the members' last blocks side by side. Its grid sets
    Grad-CAM's depth resolution: 1/8 of the input for the default small CNN, 1/16
    (ResNet10) and 1/32 (DenseNet121) for the alternatives, coarser than the thin fascia layers.
    """
    if isinstance(model, SmallCNN3D):
        return model.features[-1]
    if isinstance(model, FoldEnsemble):
        return model.features
    if isinstance(model, DenseNet121):
        return model.features.denseblock4
    if isinstance(model, ResNet):
        return model.layer4
    raise TypeError(f"not a classifier built here: {type(model).__name__}")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, logged so architecture choices stay visible."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
