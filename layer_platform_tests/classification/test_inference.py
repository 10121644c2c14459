"""``inference_network``: batch norm folded into the convolutions, the same function, and the
trained network left as it was."""

from __future__ import annotations

import pytest
import torch
from monai.networks.blocks import Convolution
from torch import nn

from layer_platform.classification.inference import inference_network
from layer_platform.classification.network import FoldEnsemble, SmallCNN3D, last_conv_block


def _with_running_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` with batch-norm statistics and affines far from their initial identity, as
    training leaves them (a fold of the initial ones would hide a wrong formula)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator))
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.3)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator))
    return model


def _batch_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]


@pytest.mark.parametrize("members", [1, 3])
def test_the_folded_network_computes_what_the_trained_one_does(members: int) -> None:
    torch.manual_seed(0)
    nets = [_with_running_statistics(SmallCNN3D(2, (4, 6, 8)), seed=k) for k in range(members)]
    model = nets[0] if members == 1 else FoldEnsemble(nets)
    x = torch.randn(3, 2, 8, 16, 6)
    folded = inference_network(model)
    assert _batch_norms(model) and not _batch_norms(folded)
    assert all(
        conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
        for conv in folded.modules()
        if isinstance(conv, nn.Conv3d)
    ), "the folded network convolves channels-last"
    assert all(relu.inplace for relu in folded.modules() if isinstance(relu, nn.ReLU)), (
        "the blocks' activations run in place on their convolution's output"
    )
    with torch.no_grad():
        expected = model.eval()(x)
        found = folded(x)
    torch.testing.assert_close(found, expected, rtol=1e-5, atol=1e-6)
    # a gradient with respect to the input (what the gradient methods take) agrees too
    grads = []
    for net in (model, folded):
        point = x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(net(point).sum(), point)
        grads.append(grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)


def test_the_trained_network_is_left_as_it_was() -> None:
    torch.manual_seed(0)
    model = _with_running_statistics(SmallCNN3D(1, (4, 6))).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = inference_network(model)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert not any(relu.inplace for relu in model.modules() if isinstance(relu, nn.ReLU))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not folded.training and not any(p.requires_grad for p in folded.parameters())
    # the same names: a layer of the model is found in the copy
    assert [n for n, _ in folded.named_modules()] == [n for n, _ in model.named_modules()]
    name = next(n for n, m in model.named_modules() if m is last_conv_block(model))
    assert isinstance(folded.get_submodule(name), nn.Sequential)


def test_a_norm_that_does_not_follow_the_convolution_is_kept() -> None:
    """Activation before norm (``ADN`` ordering ``AN``): folding would be wrong, so the block is
    left alone; a network with nothing to fold is returned as it is."""
    torch.manual_seed(0)
    block = Convolution(3, 1, 4, act="RELU", norm="batch", adn_ordering="AN")
    net = _with_running_statistics(nn.Sequential(block)).eval()
    assert inference_network(net) is net
    first = Convolution(3, 1, 4, act="RELU", norm="batch")
    after = Convolution(3, 4, 4, act="RELU", norm="batch", adn_ordering="AN")
    mixed = _with_running_statistics(nn.Sequential(first, after)).eval()
    folded = inference_network(mixed)
    assert len(_batch_norms(folded)) == 1
    x = torch.randn(2, 1, 6, 6, 4)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), mixed(x), rtol=1e-5, atol=1e-6)
