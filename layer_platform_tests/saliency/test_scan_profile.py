"""One scan's layer profile: hand-computed rows, channel handling, ablation columns, baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from layer_platform.attribution import (
    PLATFORM_METHODS,
    AttributionConfig,
    NonFiniteMap,
    aggregate_layers,
    attribute,
    cohort_fill_volume,
    control_layer_means,
    profile_scan,
)
from layer_platform.attribution.batch import joint_delta
from layer_platform.classification.modes import channel_modalities
from layer_platform_tests.attribution.toys import (
    TinyConvNet,
    VoxelLinear,
    six_layer_map,
    tiny_label_map,
)

ZEROS = AttributionConfig(baseline="zeros", ig_steps=8, internal_batch_size=8)


def test_integrated_gradients_rows_by_hand_on_a_tiny_label_map():
    """Linear model, zero baseline: IG = w * x. Weight 1 in dermis, -2 in superficial fat,
    4 in superficial fascia, 0 in deep fat, 1 in muscle, 100 in background; x = 1."""
    labels = tiny_label_map()
    per_label = np.array([100.0, 1.0, -2.0, 4.0, 0.0, 7.0, 1.0])
    weight = torch.as_tensor(per_label[labels], dtype=torch.float32)[None]
    model = VoxelLinear(weight)
    x = torch.ones(1, 1, *labels.shape)
    profile = profile_scan(model, x, labels, ["integrated_gradients"], ZEROS)[
        "integrated_gradients"
    ]
    rows = {row.layer: row for row in profile.rows}
    # |IG| in tissue: 6*1 + 6*2 + 6*4 + 0 + 12*1 = 54; the 99.5th percentile is 4.
    assert rows["superficial_fascia"].saliency_share == pytest.approx(24 / 54)
    assert rows["superficial_fascia"].mean_saliency == pytest.approx(1.0)
    assert rows["superficial_fat"].mean_saliency == pytest.approx(0.5)
    assert rows["muscle"].enrichment == pytest.approx((12 / 54) / (1 / 3))
    assert rows["deep_fat"].saliency_share == 0.0
    assert rows["deep_fascia"].n_voxels == 0 and math.isnan(rows["deep_fascia"].enrichment)
    assert sum(r.saliency_share for r in profile.rows) == pytest.approx(1.0)
    assert all(r.ablation_delta is None for r in profile.rows)
    np.testing.assert_allclose(profile.voxel_map, per_label[labels], atol=1e-5)
    assert profile.diagnostics["completeness_error"] < 1e-5
    assert profile.diagnostics["seconds"] >= 0


def test_two_channels_are_aggregated_as_the_sum_of_absolute_channel_maps():
    """B-mode argues for MP (+1) and SWE against (-1) in every voxel: a signed channel sum
    would be 0 everywhere, the sum of magnitudes is 2."""
    labels = six_layer_map()
    weight = torch.stack([torch.ones(labels.shape), -torch.ones(labels.shape)])
    model = VoxelLinear(weight)
    x = torch.ones(1, 2, *labels.shape)
    profile = profile_scan(model, x, labels, ["integrated_gradients"], ZEROS)[
        "integrated_gradients"
    ]
    np.testing.assert_allclose(profile.voxel_map, 2.0, atol=1e-5)
    counts = np.bincount(labels[labels > 0].ravel(), minlength=7)[1:]
    shares = [r.saliency_share for r in profile.rows]
    np.testing.assert_allclose(shares, counts / counts.sum(), atol=1e-6)
    # Completeness is judged on the signed sum, which adds up to f(x) - f(0) = 0.
    assert profile.diagnostics["logit"] == pytest.approx(profile.diagnostics["baseline_logit"])


def test_every_platform_method_gives_six_rows_and_map_shares_sum_to_one():
    labels = six_layer_map()
    x = torch.randn(1, 2, *labels.shape, generator=torch.Generator().manual_seed(0)) + 1
    model = TinyConvNet(in_channels=2)
    config = AttributionConfig(
        baseline="layer_mean", ig_steps=8, occlusion_window=(2, 2, 2), occlusion_stride=(2, 2, 2)
    )
    profiles = profile_scan(model, x, labels, PLATFORM_METHODS, config, target_layer=model.conv2)
    assert list(profiles) == list(PLATFORM_METHODS)
    for method, profile in profiles.items():
        assert len(profile.rows) == 6 and profile.voxel_map.shape == labels.shape
        assert [r.layer_index for r in profile.rows] == [1, 2, 3, 4, 5, 6]
        # aggregating the returned map reproduces the rows: the NIfTI is what the table sums
        if method != "layer_ablation":
            again = aggregate_layers(profile.voxel_map, labels)
            assert [r.saliency_share for r in again] == pytest.approx(
                [r.saliency_share for r in profile.rows], nan_ok=True
            )
            shares = [r.saliency_share for r in profile.rows]
            assert np.isnan(shares).all() or sum(shares) == pytest.approx(1.0)


@pytest.mark.parametrize("baseline", ["layer_mean", "blur"])
def test_the_reference_built_once_is_the_one_each_method_builds(baseline: str) -> None:
    labels = six_layer_map()
    x = torch.randn(1, 2, *labels.shape, generator=torch.Generator().manual_seed(1)) + 1
    model = TinyConvNet(in_channels=2)
    config = AttributionConfig(
        baseline=baseline, ig_steps=4, occlusion_window=(2, 2, 2), occlusion_stride=(2, 2, 2)
    )
    methods = ["occlusion", "layer_ablation"]
    profiles = profile_scan(model, x, labels, methods, config)
    for method in methods:
        alone = attribute(method, model, x, layers_map=labels, config=config)
        np.testing.assert_array_equal(profiles[method].voxel_map, alone.map.astype(np.float32))
    ig = profile_scan(model, x, labels, ["integrated_gradients"], config)["integrated_gradients"]
    alone = attribute("integrated_gradients", model, x, layers_map=labels, config=config)
    assert ig.diagnostics["baseline_logit"] == alone.extras["baseline_logit"]


def test_methods_without_a_reference_need_none_to_be_buildable() -> None:
    labels = six_layer_map()
    model = TinyConvNet(in_channels=1)
    unbuildable = AttributionConfig(baseline="cohort")  # no cohort_fill
    x = torch.ones(1, 1, *labels.shape)
    assert set(profile_scan(model, x, labels, ["saliency"], unbuildable)) == {"saliency"}
    with pytest.raises(ValueError, match="cohort_fill"):
        profile_scan(model, x, labels, ["occlusion"], unbuildable)


def test_layer_ablation_keeps_only_the_delta():
    """x = 2, w = 1, cohort fill k / 2 for layer k: delta_k = 6 (2 - k / 2), muscle 12 voxels."""
    labels = six_layer_map()
    model = VoxelLinear(torch.ones(1, *labels.shape))
    config = AttributionConfig(baseline="cohort", cohort_fill=np.arange(1, 7)[:, None] / 2)
    x = torch.full((1, 1, *labels.shape), 2.0)
    rows = profile_scan(model, x, labels, ["layer_ablation"], config)["layer_ablation"].rows
    assert [r.ablation_delta for r in rows] == pytest.approx([9.0, 6.0, 3.0, 0.0, -3.0, -12.0])
    for row in rows:
        assert math.isnan(row.mean_saliency)
        assert math.isnan(row.saliency_share)
        assert math.isnan(row.enrichment)
        assert row.n_voxels > 0 and row.volume_fraction > 0


def test_unknown_method_is_refused_before_any_work():
    labels = six_layer_map()
    model = VoxelLinear(torch.ones(1, *labels.shape))
    with pytest.raises(ValueError, match="unknown attribution method"):
        profile_scan(model, torch.ones(1, 1, *labels.shape), labels, ["saliency", "lime"])
    assert model.calls == 0


class SqrtSum(torch.nn.Module):
    """A logit whose gradient is infinite where a voxel is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sqrt().flatten(1).sum(1)


def test_a_map_with_an_infinite_gradient_is_refused_as_not_finite():
    labels = six_layer_map()
    x = torch.ones(1, 1, *labels.shape)
    assert np.isfinite(profile_scan(SqrtSum(), x, labels, ["saliency"])["saliency"].voxel_map).all()
    x[0, 0, 0, 0, 0] = 0.0
    with pytest.raises(NonFiniteMap):
        profile_scan(SqrtSum(), x, labels, ["saliency"])


def test_control_layer_means_by_hand_and_no_signal_voxels_left_out():
    labels = six_layer_map()
    bmode = labels.astype(np.float32) / 10  # layer k has value k / 10
    swe = np.where(labels == 6, 0.5, 0.2).astype(np.float32)
    swe[1, :, :] = 0.0  # one lateral column without SWE signal
    first = (np.stack([bmode, swe]), labels)
    second = (np.stack([bmode + 0.1, swe]), labels)
    table = control_layer_means([first, second], no_signal_channels=(1,))
    assert table.shape == (6, 2)
    np.testing.assert_allclose(table[:, 0], np.arange(1, 7) / 10 + 0.05, atol=1e-6)
    np.testing.assert_allclose(table[:, 1], [0.2] * 5 + [0.5], atol=1e-6)
    with pytest.raises(ValueError, match="at least one control"):
        control_layer_means([])


def test_cohort_fill_keeps_background_absent_layers_and_unmeasured_voxels():
    labels = tiny_label_map()  # no deep fascia
    x = np.stack([np.full(labels.shape, 9.0), np.full(labels.shape, 3.0)]).astype(np.float32)
    x[1, 2] = 0.0  # no SWE in lateral column 2
    table = np.arange(12, dtype=float).reshape(6, 2)
    table[4] = np.nan
    fill = cohort_fill_volume(table, x, labels, no_signal_channels=(1,))
    assert (fill[:, labels == 0] == x[:, labels == 0]).all()
    assert (fill[0][labels == 1] == 0).all() and (fill[0][labels == 6] == 10).all()
    assert (fill[1, 2] == 0).all(), "no stiffness invented where none was measured"
    assert (fill[1, 3][labels[3] == 2] == 3).all()
    with pytest.raises(ValueError, match=r"must be \(6, 2\)"):
        cohort_fill_volume(table[:, :1], x, labels)


def test_mean_shift_keeps_the_scans_texture_at_the_references_mean():
    rng = np.random.default_rng(0)
    labels = tiny_label_map()  # no deep fascia
    x = rng.normal(5.0, 1.0, (2, *labels.shape)).astype(np.float32)
    x[1] = np.abs(x[1]) / 10
    x[1, 2] = 0.0  # no SWE in lateral column 2
    table = np.arange(12, dtype=float).reshape(6, 2) / 4
    table[4] = np.nan
    fill = cohort_fill_volume(table, x, labels, no_signal_channels=(1,), matching="mean_shift")
    flat = cohort_fill_volume(table, x, labels, no_signal_channels=(1,))
    keep_same = (labels == 0) | (labels == 5)  # background, a layer the table lacks
    assert (fill[:, keep_same] == x[:, keep_same]).all()
    assert (fill[1, 2] == 0).all(), "no stiffness invented where none was measured"
    for layer in (1, 2, 3, 4, 6):
        own = x[0][labels == layer]
        shifted = fill[0][labels == layer]
        assert shifted.mean() == pytest.approx(table[layer - 1, 0], abs=1e-5)
        np.testing.assert_allclose(shifted - shifted.mean(), own - own.mean(), atol=1e-5)
        assert np.ptp(flat[0][labels == layer]) == 0, "flat: the texture is gone"
    measured = (labels > 0) & (labels != 5) & (x[1] > 0)
    assert (fill[1][measured] >= 0).all(), "shifted stiffness stays a stiffness"
    with pytest.raises(ValueError, match="matching must be one of"):
        cohort_fill_volume(table, x, labels, matching="histogram")


def test_two_channel_ablation_rows_get_a_delta_per_modality_and_the_joint_drops():
    """``bmode_swe`` (B-mode channel 0, SWE 1), w = 1 on SWE only, x = 2, fill 0: each layer's
    SWE drop is its full drop, B-mode's 0, as segmented and with every layer eroded or dilated;
    non-muscle rows hold the joint drop of layers 1..5 (5 x 6 voxels x 2), the muscle row
    muscle's drop (12 voxels x 2)."""
    labels = six_layer_map()
    weight = torch.zeros(2, *labels.shape)
    weight[1] = 1.0
    config = AttributionConfig(baseline="cohort", cohort_fill=np.zeros((6, 2)))
    x = torch.full((1, 2, *labels.shape), 2.0)
    profiles = profile_scan(VoxelLinear(weight), x, labels, ["layer_ablation", "saliency"], config)
    ablation = profiles["layer_ablation"]
    modalities = channel_modalities("bmode_swe")
    for row in ablation.rows:
        columns = ablation.modality_deltas(modalities, row.layer)
        for boundary, whole in (
            ("", row.ablation_delta),
            ("_eroded", row.ablation_delta_eroded),
            ("_dilated", row.ablation_delta_dilated),
        ):
            eroded_away = math.isnan(whole)  # a layer one voxel thin
            bmode = columns[f"ablation_delta_bmode{boundary}"]
            assert math.isnan(bmode) if eroded_away else bmode == pytest.approx(0.0)
            assert columns[f"ablation_delta_swe{boundary}"] == pytest.approx(whole, nan_ok=True)
        assert row.ablation_delta_dilated > row.ablation_delta
        expected = 24.0 if row.layer == "muscle" else 60.0
        assert joint_delta(ablation, row.layer) == {"joint_ablation_delta": pytest.approx(expected)}
    saliency = profiles["saliency"]
    assert set(saliency.modality_deltas(modalities, "dermis").values()) == {None}
    assert joint_delta(saliency, "dermis") == {"joint_ablation_delta": None}
    swe_only = AttributionConfig(baseline="cohort", cohort_fill=np.zeros((6, 1)))
    one_channel = profile_scan(
        VoxelLinear(weight[1:]), x[:, 1:], labels, ["layer_ablation"], swe_only
    )["layer_ablation"]
    assert set(one_channel.modality_deltas(("swe",), "dermis").values()) == {None}


def half_measured_deep_fat() -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Encoded SWE x = 1, except 0 (not measured) in dermis and on deep fat's sweep 1;
    w = 1, except deep fat: 2 on sweep 0 and 6 on sweep 1."""
    labels = six_layer_map()
    second_sweep = (np.arange(2) == 1)[None, None, :]
    weight = np.ones(labels.shape)
    weight[labels == 4] = 2.0
    weight[(labels == 4) & second_sweep] = 6.0
    x = np.ones(labels.shape)
    x[labels == 1] = 0.0
    x[(labels == 4) & second_sweep] = 0.0
    return labels, torch.as_tensor(weight[None]), torch.as_tensor(x[None, None])


def test_swe_mode_aggregates_measured_voxels_only_and_reports_coverage():
    """Counted: 30 voxels of |a| = 1 and deep fat's 3 measured voxels of 2 (scale 2, total
    36), for saliency (|w|) and IG (w x, zero baseline) alike. Over every voxel, IG would give
    deep fat (3 x 2 + 3 x 0) / 6 = 1 before scaling by 2, 0.5 after, and dermis 0."""
    labels, weight, x = half_measured_deep_fat()
    profiles = profile_scan(
        VoxelLinear(weight),
        x.float(),
        labels,
        ["integrated_gradients", "saliency", "layer_ablation"],
        AttributionConfig(baseline="zeros", ig_steps=8, cohort_fill=np.zeros((6, 1))),
        no_signal_channels=(0,),
    )
    measured = x[0, 0].numpy() != 0
    for method in ("integrated_gradients", "saliency"):
        profile = profiles[method]
        rows = {row.layer: row for row in profile.rows}
        assert rows["deep_fat"].mean_saliency == pytest.approx(1.0), method
        assert rows["deep_fat"].saliency_share == pytest.approx(6 / 36), method
        assert rows["deep_fat"].enrichment == pytest.approx((6 / 36) / (3 / 33)), method
        assert rows["superficial_fat"].mean_saliency == pytest.approx(0.5), method
        assert math.isnan(rows["dermis"].mean_saliency) and math.isnan(rows["dermis"].enrichment)
        assert [r.swe_coverage for r in profile.rows] == [0.0, 1.0, 1.0, 0.5, 1.0, 1.0]
        assert (profile.voxel_map[~measured] == 0).all(), "the saved map shows what counted"
        again = aggregate_layers(
            profile.voxel_map, labels, measured=measured, swe_measured=measured
        )
        assert [r.mean_saliency for r in again] == pytest.approx(
            [r.mean_saliency for r in profile.rows], nan_ok=True
        ), "aggregating the saved map over the measured voxels reproduces the rows"
    ig_map = profiles["integrated_gradients"].voxel_map
    every_voxel = {r.layer: r for r in aggregate_layers(ig_map, labels)}
    assert every_voxel["deep_fat"].mean_saliency == pytest.approx(0.5)
    assert every_voxel["dermis"].mean_saliency == 0.0
    ablation = profiles["layer_ablation"].rows
    assert [r.swe_coverage for r in ablation] == [0.0, 1.0, 1.0, 0.5, 1.0, 1.0]
    bmode = profile_scan(VoxelLinear(weight), x.float(), labels, ["saliency"], ZEROS)["saliency"]
    assert all(r.swe_coverage is None for r in bmode.rows), "bmode rows carry no coverage"
    assert not math.isnan(bmode.rows[0].mean_saliency)


def test_bmode_swe_keeps_unmeasured_voxels_with_their_bmode_evidence():
    """w = 1 on both channels, SWE not measured in dermis: saliency is 2 per voxel, 1 in
    dermis (the SWE gradient there is dropped); the voxels still count (B-mode is measured)."""
    labels = six_layer_map()
    x = torch.ones(1, 2, *labels.shape)
    x[0, 1][torch.as_tensor(labels == 1)] = 0.0
    model = VoxelLinear(torch.ones(2, *labels.shape))
    (profile,) = profile_scan(
        model, x, labels, ["saliency"], ZEROS, no_signal_channels=(1,)
    ).values()
    np.testing.assert_allclose(profile.voxel_map, np.where(labels == 1, 1.0, 2.0))
    assert [r.mean_saliency for r in profile.rows] == pytest.approx([0.5, 1, 1, 1, 1, 1])
    assert [r.swe_coverage for r in profile.rows] == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
