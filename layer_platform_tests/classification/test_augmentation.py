from __future__ import annotations

import dataclasses

import torch

from layer_platform.classification.augmentation import augment_batch
from layer_platform.classification.config import ClassifierConfig

CONFIG = ClassifierConfig(flip_lateral=True, flip_sweep=True, intensity_jitter=0.2)


def _gradients(batch: int = 32) -> torch.Tensor:
    """Channel 0 rises with depth (skin → muscle), channel 1 rises laterally."""
    lateral, depth, sweep = 6, 10, 4
    x = torch.zeros(batch, 2, lateral, depth, sweep)
    x[:, 0] = torch.arange(1, depth + 1, dtype=torch.float32).view(1, depth, 1)
    x[:, 1] = torch.arange(1, lateral + 1, dtype=torch.float32).view(lateral, 1, 1)
    return x


def test_augmentation_never_flips_or_shifts_depth() -> None:
    x = _gradients()
    out = augment_batch(x, CONFIG, torch.Generator().manual_seed(0))
    depth_profile = out[:, 0]  # (batch, lateral, depth, sweep)
    assert torch.all(depth_profile.diff(dim=2) > 0)  # still increasing from the skin
    # Only a per-sample scale changed: the profile is proportional to the original.
    ratio = depth_profile / x[:, 0]
    assert torch.allclose(ratio, ratio[:, :1, :1, :1].expand_as(ratio))


def test_augmentation_does_flip_lateral_in_some_samples_and_jitters_within_bounds() -> None:
    x = _gradients()
    out = augment_batch(x, CONFIG, torch.Generator().manual_seed(0))
    lateral_increasing = out[:, 1, 1, 0, 0] > out[:, 1, 0, 0, 0]
    assert 0 < int(lateral_increasing.sum()) < len(x)  # some flipped, some not
    scale = out[:, 0, 0, 0, 0] / x[:, 0, 0, 0, 0]
    assert torch.all((scale >= 0.8) & (scale <= 1.2))
    assert not torch.allclose(scale, torch.ones_like(scale))


def test_jitter_keeps_invalid_swe_at_zero_and_disabled_augmentation_is_identity() -> None:
    x = _gradients()
    x[:, :, :, :3] = 0
    out = augment_batch(x, CONFIG, torch.Generator().manual_seed(1))
    assert torch.all(out[:, :, :, :3] == 0)
    off = dataclasses.replace(CONFIG, flip_lateral=False, flip_sweep=False, intensity_jitter=0.0)
    assert torch.equal(augment_batch(x, off, torch.Generator().manual_seed(1)), x)


def test_augmentation_is_reproducible_from_the_generator_seed() -> None:
    x = _gradients()
    first = augment_batch(x, CONFIG, torch.Generator().manual_seed(5))
    again = augment_batch(x, CONFIG, torch.Generator().manual_seed(5))
    assert torch.equal(first, again)


def test_modality_dropout_silences_one_whole_channel_in_about_its_share_of_samples() -> None:
    x = _gradients(batch=400)
    only = ClassifierConfig(flip_lateral=False, flip_sweep=False, modality_dropout=0.5)
    out = augment_batch(x, only, torch.Generator().manual_seed(2))
    silent = (out == 0).flatten(2).all(dim=2)  # (batch, channel): the channel is all 0
    untouched = (out == x).flatten(2).all(dim=2)
    assert torch.all(silent ^ untouched), "a channel is either kept as it was or silenced"
    assert not torch.any(silent.all(dim=1)), "never both modalities"
    share = silent.any(dim=1).float().mean().item()
    assert 0.4 < share < 0.6
    assert torch.all(silent.sum(dim=0) > 0), "either channel"


def test_modality_dropout_leaves_a_single_channel_input_alone() -> None:
    x = _gradients()[:, :1]
    only = ClassifierConfig(flip_lateral=False, flip_sweep=False, modality_dropout=0.9)
    assert torch.equal(augment_batch(x, only, torch.Generator().manual_seed(3)), x)
