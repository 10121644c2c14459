from __future__ import annotations

import pytest
import torch
from captum.attr import LayerGradCam

from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.network import (
    FoldEnsemble,
    GlobalPool3d,
    SmallCNN3D,
    build_classifier,
    check_input_shape,
    count_parameters,
    last_conv_block,
)


def test_default_small_cnn_is_small_and_accepts_any_grid() -> None:
    config = ClassifierConfig()
    model = build_classifier(config, in_channels=2).eval()
    assert 100_000 <= count_parameters(model) <= 500_000
    for shape in [(32, 96, 16), (12, 24, 6), (9, 17, 5)]:
        assert model(torch.zeros(2, 2, *shape)).shape == (2, 1)


def test_small_cnn_last_block_is_features_minus_one_at_the_documented_resolution() -> None:
    config = ClassifierConfig(channels=(4, 8, 16))
    model = build_classifier(config, in_channels=1).eval()
    assert last_conv_block(model) is model.features[-1]
    seen: list[torch.Size] = []
    model.features[-1].register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    model(torch.zeros(1, 1, 16, 32, 8))
    assert seen == [torch.Size([1, 16, 4, 8, 2])]  # two halvings after the first block


@pytest.mark.parametrize(
    ("architecture", "shape"),
    [("small_cnn", (12, 24, 6)), ("resnet10", (12, 24, 6)), ("densenet121", (29, 29, 29))],
)
def test_layer_gradcam_runs_on_the_last_conv_block(architecture: str, shape) -> None:
    config = ClassifierConfig(architecture=architecture, channels=(4, 8, 16), final_model="refit")
    model = build_classifier(config, in_channels=2).eval()
    x = torch.rand(1, 2, *shape, requires_grad=True)
    cam = LayerGradCam(model, last_conv_block(model)).attribute(x, target=0)
    assert cam.ndim == 5  # still a spatial (N, 1, l, d, s) map, ready to upsample
    assert torch.all(torch.isfinite(cam))


def test_densenet_refuses_grids_it_cannot_pool() -> None:
    config = ClassifierConfig(architecture="densenet121", final_model="refit")
    with pytest.raises(ValueError, match="at least 29"):
        check_input_shape(config, (32, 96, 16))
    check_input_shape(config, (32, 96, 32))
    check_input_shape(ClassifierConfig(), (2, 2, 2))


def test_last_conv_block_rejects_foreign_models() -> None:
    with pytest.raises(TypeError):
        last_conv_block(torch.nn.Linear(2, 1))


def _band(thickness: int, value: float) -> torch.Tensor:
    """A (1, 1, 8, 32, 4) map, zero but for a horizontal band ``thickness`` voxels deep."""
    x = torch.zeros(1, 1, 8, 32, 4)
    x[:, :, :, 10 : 10 + thickness] = value
    return x


def test_max_pooling_reads_a_thin_layer_whatever_its_thickness() -> None:
    """Why ``max`` is the default: the average confounds a band's brightness with its depth."""
    pool_max, pool_avg = GlobalPool3d("max"), GlobalPool3d("avg")
    assert pool_max(_band(2, 0.7)).item() == pool_max(_band(8, 0.7)).item() == pytest.approx(0.7)
    assert pool_avg(_band(8, 0.7)).item() == pytest.approx(4 * pool_avg(_band(2, 0.7)).item())
    both = GlobalPool3d("avgmax")(torch.rand(3, 5, 4, 4, 4))
    assert both.shape == (3, 10)
    with pytest.raises(ValueError, match="pooling"):
        GlobalPool3d("median")


@pytest.mark.parametrize("pooling", ["avg", "max", "avgmax"])
def test_every_pooling_gives_one_logit(pooling: str) -> None:
    model = build_classifier(ClassifierConfig(channels=(4, 8), pooling=pooling), in_channels=2)
    assert model.eval()(torch.rand(2, 2, 12, 24, 6)).shape == (2, 1)


def test_fold_ensemble_gradcam_is_the_mean_of_its_members_maps() -> None:
    torch.manual_seed(0)
    members = [SmallCNN3D(2, (4, 8), pooling="max").eval() for _ in range(3)]
    ensemble = FoldEnsemble(members).eval()
    x = torch.rand(1, 2, 12, 24, 6)
    with torch.no_grad():
        torch.testing.assert_close(ensemble(x), torch.stack([m(x) for m in members]).mean(0))
    # Before the ReLU, Grad-CAM is linear in the logit: the ensemble's map is the members' mean.
    cam = LayerGradCam(ensemble, last_conv_block(ensemble)).attribute(x, relu_attributions=False)
    each = [
        LayerGradCam(m, last_conv_block(m)).attribute(x, relu_attributions=False) for m in members
    ]
    torch.testing.assert_close(cam, torch.stack(each).mean(0))


def test_fold_ensemble_refuses_members_it_cannot_join() -> None:
    with pytest.raises(ValueError, match="last-block width"):
        FoldEnsemble([SmallCNN3D(1, (4, 8)), SmallCNN3D(1, (4, 16))])
    with pytest.raises(TypeError, match="SmallCNN3D"):
        FoldEnsemble([])
    with pytest.raises(ValueError, match="needs architecture small_cnn"):
        ClassifierConfig(architecture="resnet10")
