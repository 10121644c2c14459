"""A registered network as data: an architecture description (JSON) that rebuilds the module.

Registered models are stored as weights plus this description, never as pickles: unpickling runs
whatever code the file names, so anyone able to write the registry could run code in every
worker. Only the networks the platform trains can be described; anything else is refused when
it is logged, not when it is loaded.
"""

from __future__ import annotations

from typing import Any

from monai.networks.nets import DenseNet121, ResNet, UNet, resnet10
from torch import nn

from layer_platform.classification.network import FoldEnsemble, SmallCNN3D

#: The UNet constructor arguments MONAI keeps as attributes of the same name (``dimensions`` is
#: stored for ``spatial_dims``).
_UNET_ARGUMENTS = (
    "in_channels",
    "out_channels",
    "channels",
    "strides",
    "kernel_size",
    "up_kernel_size",
    "num_res_units",
    "act",
    "norm",
    "dropout",
    "bias",
    "adn_ordering",
)


def describe(model: nn.Module) -> dict[str, Any]:
    """The JSON-able description :func:`build` turns back into an untrained ``model``.

    Raises:
        TypeError: ``model`` is not a network this platform trains (nothing to rebuild it from).
    """
    if isinstance(model, FoldEnsemble):
        return {"kind": "fold_ensemble", "members": list(model.member_hyperparameters)}
    if isinstance(model, SmallCNN3D):
        return {"kind": "small_cnn", **model.hyperparameters}
    if isinstance(model, UNet):
        arguments = {name: getattr(model, name) for name in _UNET_ARGUMENTS}
        return {"kind": "monai_unet", "spatial_dims": model.dimensions, **arguments}
    if isinstance(model, DenseNet121):
        return {"kind": "densenet121", "in_channels": model.features.conv0.in_channels}
    if isinstance(model, ResNet) and [len(layer) for layer in _resnet_layers(model)] == [1] * 4:
        return {"kind": "resnet10", "in_channels": model.conv1.in_channels}
    raise TypeError(
        f"cannot register a {type(model).__name__}: only the platform's networks (small_cnn, "
        "fold_ensemble, monai_unet, densenet121, resnet10) can be stored as weights"
    )


def build(spec: dict[str, Any]) -> nn.Module:
    """An untrained network of the described architecture (load its weights next).

    Raises:
        ValueError: an unknown ``kind`` (a description written by a newer platform, or tampered).
    """
    arguments = {key: value for key, value in spec.items() if key != "kind"}
    kind = spec.get("kind")
    if kind == "small_cnn":
        return _small_cnn(arguments)
    if kind == "fold_ensemble":
        return FoldEnsemble([_small_cnn(member) for member in arguments["members"]])
    if kind == "monai_unet":
        return UNet(**arguments)
    if kind == "densenet121":
        return DenseNet121(spatial_dims=3, in_channels=arguments["in_channels"], out_channels=1)
    if kind == "resnet10":
        return resnet10(spatial_dims=3, n_input_channels=arguments["in_channels"], num_classes=1)
    raise ValueError(f"unknown architecture kind {kind!r} in a registered model's description")


def _small_cnn(arguments: dict[str, Any]) -> SmallCNN3D:
    return SmallCNN3D(**{**arguments, "channels": tuple(arguments["channels"])})


def _resnet_layers(model: ResNet) -> list[nn.Module]:
    return [model.layer1, model.layer2, model.layer3, model.layer4]
