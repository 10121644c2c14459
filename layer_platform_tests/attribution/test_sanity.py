"""Model randomisation (Adebayo et al. 2018): gradients pass, a model-blind edge detector fails."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor, nn

from layer_platform.attribution import (
    AttributionConfig,
    AttributionResult,
    LogitFn,
    model_randomization_check,
    parameterised_modules,
    randomize_model,
)
from layer_platform.attribution.randomization_run import RandomizationOutcome
from layer_platform.attribution.sanity import cascade_steps
from layer_platform.statistics import Evidence, RankingSpec, ranking_rows
from layer_platform.statistics.skill import SkillTest
from layer_platform_tests.attribution.toys import TinyConvNet

GRID = (8, 12, 2)
LAYER_KEYS = [
    "dermis",
    "superficial_fat",
    "superficial_fascia",
    "deep_fat",
    "deep_fascia",
    "muscle",
]


def label_map(thickness: tuple[int, int, int, int]) -> np.ndarray:
    """Dermis, superficial fat, superficial fascia, deep fat over depth rows 0-7 with the given
    thicknesses, deep fascia on row 8, muscle on rows 9-11."""
    depth = np.concatenate([np.repeat([1, 2, 3, 4], thickness), [5, 6, 6, 6]])
    return np.broadcast_to(depth[None, :, None], GRID).copy()


#: Four scans with different anatomy (the deep fascia stays on row 8, which the model reads).
LABEL_MAPS = [label_map(t) for t in ((2, 2, 2, 2), (1, 3, 1, 3), (3, 1, 2, 2), (2, 3, 1, 2))]


def edge_detector(
    forward: LogitFn,
    inputs: Tensor,
    *,
    baseline: Tensor | None,
    layers_map: np.ndarray | None,
    target_layer: nn.Module | None,
    config: AttributionConfig,
) -> AttributionResult:
    """Test-only pseudo-method: the input's gradient magnitude. It never calls the model."""
    image = inputs[0].sum(dim=0).detach().numpy()
    magnitude = np.sqrt(sum(g**2 for g in np.gradient(image)))
    return AttributionResult(method="edge_detector", map=magnitude)


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, list[tuple[Tensor, np.ndarray]]]:
    """A linear classifier trained to call MP from the deep fascia's mean intensity (row 8),
    and four scans whose brightness follows their layers."""
    torch.manual_seed(0)
    x = torch.randn(256, 1, *GRID)
    y = (x[:, 0, :, 8, :].mean(dim=(1, 2)) > 0).float()
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(GRID)), 1))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(100):
        optimiser.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y).backward()
        optimiser.step()
    scans = [
        (torch.as_tensor(labels, dtype=torch.float32)[None, None] + 0.1 * x[i : i + 1], labels)
        for i, labels in enumerate(LABEL_MAPS)
    ]
    return model, scans


def test_randomize_model_copies_and_reinitialises_top_down():
    net = TinyConvNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    top = randomize_model(net, top=1, seed=3)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    changed = {k for k, v in top.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"head.weight", "head.bias"}
    whole = randomize_model(net, seed=3)
    assert all(not torch.equal(v, before[k]) for k, v in whole.state_dict().items())
    again = randomize_model(net, seed=3)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in whole.state_dict().items())
    with pytest.raises(ValueError, match="top must lie"):
        randomize_model(net, top=4)


@pytest.mark.parametrize("seed", range(4))
def test_gradient_saliency_passes(trained, seed: int):
    model, scans = trained
    report = model_randomization_check("saliency", model, scans, seed=seed)
    assert report.passed
    (step,) = report.steps
    assert step.layer_correlation < report.bar
    assert abs(step.voxel_correlation) < 0.2


def test_edge_detector_is_flagged(trained):
    model, scans = trained
    report = model_randomization_check(edge_detector, model, scans)
    assert not report.passed
    assert report.method == "edge_detector"
    assert report.steps[0].layer_correlation == pytest.approx(1.0)
    assert report.steps[0].voxel_correlation == pytest.approx(1.0)


def test_cascading_gradcam_finds_its_layer_in_each_copy():
    net = TinyConvNet()
    scans = [(torch.randn(1, 1, *GRID, generator=torch.Generator().manual_seed(1)), LABEL_MAPS[0])]
    report = model_randomization_check(
        "gradcam", net, scans, target_layer=net.conv2, cascading=True, profile="mean_saliency"
    )
    assert [s.n_randomized for s in report.steps] == [1, 2, 3]
    assert len(parameterised_modules(net)) == 3
    with pytest.raises(ValueError, match="not a submodule"):
        model_randomization_check("gradcam", net, scans, target_layer=nn.Conv3d(1, 1, 1))


@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_cascade_runs_top_down_to_every_module(n):
    steps = cascade_steps(n)
    assert steps[0] == 1 and steps[-1] == n
    assert all(a < b for a, b in itertools.pairwise(steps))


def test_cascade_steps_with_per_scan_configs(trained):
    """The reported run's config per scan (here a different baseline each); verdict from the
    last, fully random step."""
    model, scans = trained
    configs = [AttributionConfig(baseline=b) for b in ("zeros", "layer_mean")] * 2
    report = model_randomization_check(
        "integrated_gradients", model, scans, config=configs, cascading=cascade_steps(1)
    )
    assert [s.n_randomized for s in report.steps] == [1] and report.passed
    with pytest.raises(ValueError, match="configs for"):
        model_randomization_check("saliency", model, scans, config=configs[:3])


def test_a_random_model_that_still_ranks_a_layer_gets_no_finding(trained):
    """End to end on the gate: a model-blind method ranks a layer first, for any weights;
    its check fails, and the verdict says so however clearly the layer leads."""
    model, scans = trained
    report = model_randomization_check(edge_detector, model, scans)
    outcome = RandomizationOutcome(results={"bmode/edge_detector": {"passed": report.passed}})
    rows = []
    for subject in range(12):
        profile = np.full(6, 0.3) + 0.01 * subject
        profile[4] += 1.0  # the deep fascia row's edges
        for layer, value in zip(LAYER_KEYS, profile, strict=True):
            rows.append(
                {
                    "scan_id": f"S{subject}",
                    "subject_id": f"S{subject}",
                    "label": "MP" if subject % 2 else "control",
                    "input_mode": "bmode",
                    "method": "edge_detector",
                    "layer": layer,
                    "mean_saliency": value,
                    "explained_by": "out_of_fold",
                }
            )
    skill = SkillTest(auc=0.95, p_value=0.001, n_subjects=12, n_permutations=2000)
    evidence = Evidence(skill={"bmode": skill}, model_randomization=outcome.passed())
    ranking = ranking_rows(pd.DataFrame(rows), RankingSpec("edge_detector", evidence), n_boot=200)
    assert ranking.iloc[0]["layer"] == "deep_fascia"
    assert not ranking["stands_out"].any()
    assert ranking["verdict"].str.contains("fails the model-randomization check").all()


def test_a_fold_ensemble_cascade_randomizes_every_member_at_the_same_depth():
    from layer_platform.attribution.sanity import depth_levels
    from layer_platform.classification.network import FoldEnsemble, SmallCNN3D

    torch.manual_seed(0)
    ensemble = FoldEnsemble([SmallCNN3D(1, (2, 3)), SmallCNN3D(1, (2, 3))])
    levels = depth_levels(ensemble)
    assert [len(level) for level in levels] == [2] * len(levels)
    assert [name for name, _ in levels[-1]] == ["heads.0.2", "heads.1.2"]
    before = {k: v.clone() for k, v in ensemble.state_dict().items()}
    top = randomize_model(ensemble, top=1)
    changed = {k for k, v in top.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {f"heads.{i}.2.{p}" for i in (0, 1) for p in ("weight", "bias")}


def blind_where_unmeasured(
    forward: LogitFn,
    inputs: Tensor,
    *,
    baseline: Tensor | None,
    layers_map: np.ndarray | None,
    target_layer: nn.Module | None,
    config: AttributionConfig,
) -> AttributionResult:
    """Test-only pseudo-method: the model's gradient where the input was measured, and a
    large model-blind pattern (rising with depth) where it is exactly 0 (no SWE measured)."""
    x = inputs.detach().clone().requires_grad_(True)
    forward(x).sum().backward()
    gradient = x.grad[0, 0].abs().numpy()
    depth = np.arange(GRID[1], dtype=np.float32)[None, :, None]
    blind = 100.0 * (1.0 + depth) * np.ones(GRID, np.float32)
    unmeasured = inputs[0, 0].detach().numpy() == 0
    return AttributionResult("blind_where_unmeasured", np.where(unmeasured, blind, gradient))


def test_unmeasured_swe_voxels_never_enter_the_check(trained):
    """A map that is model-blind only where nothing was measured is flagged when those voxels
    count, and judged on the measured voxels (as the reported aggregates are) when the
    no-signal channel is named."""
    model, scans = trained
    blanked = []
    for x, labels in scans:
        x = x.clone()
        x[0, 0, :, :8] = 0.0  # rows 0-7 (dermis .. deep fat) unmeasured
        blanked.append((x, labels))
    everywhere = model_randomization_check(blind_where_unmeasured, model, blanked)
    measured = model_randomization_check(
        blind_where_unmeasured, model, blanked, no_signal_channels=(0,)
    )
    assert not everywhere.passed and everywhere.steps[0].layer_correlation > 0.9
    assert measured.passed
    assert measured.steps[0].layer_correlation < everywhere.steps[0].layer_correlation - 0.3


def test_each_network_of_the_cascade_is_folded_once_for_all_its_scans(monkeypatch):
    """Folding copies the network (``inference_network``); per scan it cost the demo's check an
    eighth of its time. The trained network and each cascade step are folded once."""
    from layer_platform.classification import inference
    from layer_platform.classification.network import SmallCNN3D

    copies = []
    deepcopy = inference.copy.deepcopy
    counting = SimpleNamespace(deepcopy=lambda m: copies.append(m) or deepcopy(m))
    monkeypatch.setattr(inference, "copy", counting)
    torch.manual_seed(0)
    model = SmallCNN3D(1, (2, 3)).eval()
    scans = [(torch.randn(1, 1, *GRID), labels) for labels in LABEL_MAPS]
    steps = cascade_steps(len(parameterised_modules(model)))
    report = model_randomization_check("layer_ablation", model, scans, cascading=steps)
    assert len(report.steps) == len(steps)
    assert len(copies) == 1 + len(steps), "one fold per network, not one per scan"
