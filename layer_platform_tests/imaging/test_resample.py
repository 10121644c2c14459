"""The separable resampler against MONAI's ``SpatialResample``: the values it replaced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import SpatialResample

from layer_platform.imaging.resample import resample, resampled_shape

#: Native spacings of the simulator's devices and of exporters' odd grids, onto both presets'
#: working spacings (down- and upsampling, ratios that put centres on ties and off them).
CASES = [
    ((0.55, 0.22, 1.1), (1.0, 0.25, 1.5)),
    ((0.45, 0.18, 0.9), (1.0, 0.25, 1.5)),
    ((0.5, 0.2, 1.0), (0.25, 0.1, 0.5)),
    ((1.3, 0.07, 2.0), (1.0, 0.25, 1.5)),
]


def monai_resample(channels: np.ndarray, spacing, target, shape, mode: str) -> np.ndarray:
    def affine(s):
        matrix = np.diag([*s, 1.0])
        matrix[:3, 3] = np.asarray(s) / 2  # the grid's corner, not its first centre, at 0
        return torch.as_tensor(matrix)

    image = MetaTensor(torch.as_tensor(channels), affine=affine(spacing))
    out = SpatialResample(mode=mode, padding_mode="border")(
        image, dst_affine=affine(target), spatial_size=shape
    )
    return out.as_tensor().numpy()


@pytest.mark.parametrize(("spacing", "target"), CASES)
def test_trilinear_values_are_monais(spacing, target) -> None:
    image = np.random.default_rng(0).random((2, 23, 61, 9)).astype(np.float32)
    shape = resampled_shape(
        tuple(n * s for n, s in zip(image.shape[1:], spacing, strict=True)), target
    )
    ours = resample(image, spacing, target, shape, "bilinear")
    assert ours.shape == (2, *shape) and ours.dtype == np.float32
    np.testing.assert_allclose(
        ours, monai_resample(image, spacing, target, shape, "bilinear"), atol=1e-5
    )


@pytest.mark.parametrize(("spacing", "target"), CASES)
def test_nearest_labels_are_monais_but_for_exact_ties(spacing, target) -> None:
    labels = np.random.default_rng(1).integers(0, 7, (1, 23, 61, 9)).astype(np.float32)
    shape = resampled_shape(
        tuple(n * s for n, s in zip(labels.shape[1:], spacing, strict=True)), target
    )
    ours = resample(labels, spacing, target, shape, "nearest")
    theirs = monai_resample(labels, spacing, target, shape, "nearest")
    assert set(np.unique(ours)) <= set(range(7))
    # a destination centre exactly halfway between two source centres may round either way in
    # float32 (ours: to even); everywhere else the same source voxel
    ties = [
        np.isclose(((np.arange(n) + 0.5) * t / s - 0.5) % 1, 0.5)
        for n, s, t in zip(shape, spacing, target, strict=True)
    ]
    clear = ~ties[0][:, None, None] & ~ties[1][None, :, None] & ~ties[2][None, None, :]
    np.testing.assert_array_equal(ours[0][clear], theirs[0][clear])


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_a_window_is_the_same_voxels_of_the_whole_grid(mode: str) -> None:
    """``first`` shifts the destination window: resampling it alone gives the voxels a crop of
    the whole destination grid keeps, on growing and shrinking axes alike."""
    image = np.random.default_rng(2).random((2, 9, 12, 5)).astype(np.float32)
    spacing, target = (0.5, 0.2, 1.0), (0.7, 0.15, 0.5)
    whole = resample(image, spacing, target, (6, 16, 10), mode)
    window = resample(image, spacing, target, (3, 10, 4), mode, first=(2, 5, 3))
    # Equal up to rounding: the axes may be taken in another order (smallest arrays first).
    np.testing.assert_allclose(window, whole[:, 2:5, 5:15, 3:7], rtol=0, atol=1e-6)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown resampling mode 'cubic'"):
        resample(np.zeros((1, 2, 2, 2)), (1, 1, 1), (1, 1, 1), (2, 2, 2), "cubic")
