"""Issue #21: mixed precision where the device multiplies it fast, float32 everywhere else."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from layer_platform.classification.modes import make_items
from layer_platform.classification.network import build_classifier
from layer_platform.classification.training import predict_proba, train_classifier
from layer_platform.compute import (
    Precision,
    cpu_has_bf16,
    require_finite_weights,
    require_repeatable_gradients,
    training_precision,
)
from layer_platform_tests.classification.synthetic import (
    TINY_CONFIG,
    one_torch_thread,
    synthetic_scans,
)

CPU = torch.device("cpu")


def test_bf16_units_are_read_from_the_cpu_flags() -> None:
    assert cpu_has_bf16("processor : 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_bf16("flags : fpu amx_tile amx_bf16\n")
    assert not cpu_has_bf16("flags : fpu sse2 avx2 avx512f\n")
    assert not cpu_has_bf16("model name : bf16 in a name is not a flag\n")


def test_cpu_precision_follows_the_hardware_and_can_be_switched_off(monkeypatch) -> None:
    monkeypatch.setattr("layer_platform.compute.cpu_has_bf16", lambda: True)
    assert training_precision(CPU).dtype == torch.bfloat16
    assert not training_precision(CPU).needs_grad_scaler
    assert training_precision(CPU, mixed=False).dtype is None
    monkeypatch.setattr("layer_platform.compute.cpu_has_bf16", lambda: False)
    assert training_precision(CPU).name == "float32"


def test_cuda_precision_is_float16_with_loss_scaling() -> None:
    precision = training_precision(torch.device("cuda"))
    assert precision.dtype == torch.float16 and precision.needs_grad_scaler


def test_batches_and_models_share_the_channels_last_layout() -> None:
    precision = Precision(CPU, None)
    model = precision.model(build_classifier(TINY_CONFIG, 1))
    conv = next(p for p in model.parameters() if p.dim() == 5)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d)
    batch = precision.batch(torch.zeros(2, 1, 4, 6, 8))
    assert batch.is_contiguous(memory_format=torch.channels_last_3d)
    assert Precision(CPU, None, channels_last=False).batch(batch).is_contiguous()


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bfloat16 units")
def test_bf16_training_learns_like_float32_and_predicts_in_float32() -> None:
    """The same seed in both precisions: both learn the planted slab, and predictions (always
    float32) differ by little, because only the training arithmetic changed."""
    items = make_items(synthetic_scans(n_subjects=12), "bmode")
    train = [item for item in items if int(item.subject_id[3:]) < 8]
    val = [item for item in items if int(item.subject_id[3:]) >= 8]
    config = dataclasses.replace(TINY_CONFIG, max_epochs=TINY_CONFIG.min_epochs)
    with one_torch_thread():
        fast = train_classifier(train, val, config)
        exact = train_classifier(train, val, dataclasses.replace(config, amp=False))
        p_fast = predict_proba(fast.model, val, fast.device)
        p_exact = predict_proba(exact.model, val, exact.device)
    y = np.array([item.y for item in val])
    for proba in (p_fast, p_exact):
        assert proba[y == 1].mean() > proba[y == 0].mean()
    assert np.corrcoef(p_fast, p_exact)[0, 1] > 0.9


def test_a_mixed_precision_run_that_diverges_is_trained_again_in_float32(monkeypatch) -> None:
    """A non-finite bfloat16 loss costs the fast path, never the model."""
    from layer_platform.classification import training

    real_epoch = training.train_one_epoch

    def diverging_in_bf16(model, loader, loss_fn, optimizer, precision, *rest):
        if precision.dtype is not None:
            return float("nan")
        return real_epoch(model, loader, loss_fn, optimizer, precision, *rest)

    monkeypatch.setattr(training, "train_one_epoch", diverging_in_bf16)
    items = make_items(synthetic_scans(n_subjects=8), "bmode")
    train = [item for item in items if int(item.subject_id[3:]) < 6]
    val = [item for item in items if int(item.subject_id[3:]) >= 6]
    config = dataclasses.replace(TINY_CONFIG, min_epochs=1, max_epochs=2)
    with one_torch_thread():
        trained = train_classifier(train, val, config, precision=Precision(CPU, torch.bfloat16))
    assert trained.precision == "float32"
    assert [report.epoch for report in trained.history] == [1, 2]
    with pytest.raises(FloatingPointError, match="float32 diverged"):
        monkeypatch.setattr(training, "train_one_epoch", lambda *args: float("nan"))
        train_classifier(train, val, config, precision=Precision(CPU, None))


def test_a_mixed_precision_run_that_leaves_a_nan_weight_is_trained_again(monkeypatch) -> None:
    """A NaN in a weight that no output reads (a tap that only meets padding) leaves the loss
    and the predictions finite; the weights are checked too, and the run is trained again."""
    from layer_platform.classification import training

    real_epoch = training.train_one_epoch

    def nan_tap_in_bf16(model, loader, loss_fn, optimizer, precision, *rest):
        loss = real_epoch(model, loader, loss_fn, optimizer, precision, *rest)
        if precision.dtype is not None:
            with torch.no_grad():
                next(p for p in model.parameters() if p.dim() == 5).view(-1)[0] = float("nan")
        return loss

    monkeypatch.setattr(training, "train_one_epoch", nan_tap_in_bf16)
    items = make_items(synthetic_scans(n_subjects=8), "bmode")
    train = [item for item in items if int(item.subject_id[3:]) < 6]
    config = dataclasses.replace(TINY_CONFIG, min_epochs=1, max_epochs=1)
    with one_torch_thread():
        trained = train_classifier(train, None, config, precision=Precision(CPU, torch.bfloat16))
    assert trained.precision == "float32"
    assert all(bool(torch.isfinite(p).all()) for p in trained.model.parameters())


def test_non_finite_weights_are_named() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    require_finite_weights(model, "a check")
    model[1].running_var[0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"a check .* \(1\.running_var\)"):
        require_finite_weights(model, "a check")


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bfloat16 units")
def test_bf16_training_repeats_where_a_convolution_meets_two_voxels() -> None:
    """8 lateral voxels reach 2 at TINY_CONFIG's deepest block, where oneDNN's bfloat16 weight
    gradient does not repeat: two seeded runs must still give the same model (in float32)."""
    items = make_items(synthetic_scans(n_subjects=8, shape=(8, 24, 6)), "bmode")
    config = dataclasses.replace(TINY_CONFIG, min_epochs=1, max_epochs=1)
    with one_torch_thread():
        runs = [
            train_classifier(items, None, config, precision=Precision(CPU, torch.bfloat16))
            for _ in range(2)
        ]
    assert [run.precision for run in runs] == ["float32", "float32"]
    first, second = (run.model.state_dict() for run in runs)
    assert all(torch.equal(first[name], second[name]) for name in first)


def _convolutions() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1, stride=2),
        torch.nn.BatchNorm3d(4),
        torch.nn.Conv3d(4, 4, (1, 3, 3), padding=(0, 1, 1)),
        torch.nn.Conv3d(4, 4, 3, padding=1),
    )


def test_bf16_is_refused_where_a_convolution_meets_a_shallow_input() -> None:
    """8 voxels deep reach 4 after the strided convolution; 4 reach 2, refused in CPU
    bfloat16 only, naming the first such convolution (a kernel 1 deep is not one)."""
    bf16, fp32 = Precision(CPU, torch.bfloat16), Precision(CPU, None)
    model = _convolutions()
    require_repeatable_gradients(model, bf16, torch.ones(2, 1, 8, 6, 6), "a check")
    shallow = torch.ones(2, 1, 4, 6, 6)
    with pytest.raises(FloatingPointError, match=r"a check: bfloat16 .* \(3\)"):
        require_repeatable_gradients(model, bf16, shallow, "a check")
    require_repeatable_gradients(model, fp32, shallow, "a check")
    require_repeatable_gradients(model, Precision(torch.device("cuda"), torch.float16), shallow, "")
    assert int(model[1].num_batches_tracked) == 0, "the model itself is untouched"
