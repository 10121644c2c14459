"""References built from a scan: each kind checked against its definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layer_platform.attribution import AttributionConfig, make_baseline, resolve_baseline
from layer_platform.errors import ScanError
from layer_platform_tests.attribution.toys import six_layer_map

CONFIG = AttributionConfig()


@pytest.fixture
def scan() -> torch.Tensor:
    """Two channels on the 4 x 7 x 2 grid; channel 1 is channel 0 negated plus 10."""
    values = torch.arange(4 * 7 * 2, dtype=torch.float32).reshape(1, 1, 4, 7, 2)
    return torch.cat([values, 10 - values], dim=1)


def test_layer_mean_replaces_every_region_by_its_own_mean(scan: torch.Tensor):
    labels = six_layer_map()
    ref = make_baseline("layer_mean", scan, labels, CONFIG)[0].numpy()
    for c in range(2):
        for label in range(7):
            region = labels == label
            assert np.allclose(ref[c][region], scan[0, c].numpy()[region].mean())


def test_mean_is_the_scan_mean_per_channel(scan: torch.Tensor):
    ref = make_baseline("mean", scan, None, CONFIG)
    assert torch.allclose(ref, scan.mean(dim=(2, 3, 4), keepdim=True).expand_as(scan))


def test_zeros(scan: torch.Tensor):
    assert not make_baseline("zeros", scan, None, CONFIG).any()


def test_blur_flattens_texture_but_keeps_the_level():
    noisy = torch.randn(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0)) + 5
    ref = make_baseline("blur", noisy, None, AttributionConfig(blur_sigma=4.0))
    assert ref.shape == noisy.shape
    assert ref.std() < 0.2 * noisy.std()
    assert ref.mean() == pytest.approx(float(noisy.mean()), abs=0.05)


def test_cohort_table_fills_tissue_and_keeps_background(scan: torch.Tensor):
    labels = six_layer_map()
    table = np.array([[k, -k] for k in range(1, 7)], dtype=float)  # (6 layers, 2 channels)
    ref = make_baseline("cohort", scan, labels, AttributionConfig(cohort_fill=table))[0]
    tissue = torch.as_tensor(labels > 0)
    assert torch.equal(ref[0][tissue], torch.as_tensor(labels[labels > 0], dtype=torch.float32))
    assert torch.equal(ref[1][tissue], -ref[0][tissue])
    assert torch.equal(ref[:, ~tissue], scan[0][:, ~tissue])


def test_cohort_texture_is_used_as_given(scan: torch.Tensor):
    labels = six_layer_map()
    texture = np.full((2, 4, 7, 2), 3.0)
    ref = make_baseline("cohort", scan, labels, AttributionConfig(cohort_fill=texture))[0]
    assert (ref[:, torch.as_tensor(labels > 0)] == 3.0).all()


@pytest.mark.parametrize(
    ("kind", "labels", "config", "error", "match"),
    [
        ("black", None, CONFIG, ValueError, "unknown baseline"),
        ("layer_mean", None, CONFIG, ValueError, "layers_map"),
        ("cohort", six_layer_map(), CONFIG, ValueError, "cohort_fill"),
        (
            "cohort",
            six_layer_map(),
            AttributionConfig(cohort_fill=np.ones(6)),
            ValueError,
            r"\(6, 2\)",
        ),
        ("layer_mean", six_layer_map() + 1, CONFIG, ScanError, "0..6"),
    ],
)
def test_bad_requests_are_refused(scan, kind, labels, config, error, match):
    with pytest.raises(error, match=match):
        make_baseline(kind, scan, labels, config)


def test_explicit_baseline_wins_and_must_match(scan: torch.Tensor):
    explicit = torch.full_like(scan, 7.0)
    assert torch.equal(resolve_baseline(explicit, scan, None, CONFIG), explicit)
    with pytest.raises(ValueError, match="baseline shape"):
        resolve_baseline(explicit[:, :1], scan, None, CONFIG)
