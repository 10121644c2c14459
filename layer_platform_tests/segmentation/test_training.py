"""A tiny training run really optimises; inference shapes, sliding window and the split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss

from layer_platform.compute import Precision
from layer_platform.segmentation import training
from layer_platform.segmentation.config import SegmenterConfig
from layer_platform.segmentation.inference import segment_volume
from layer_platform.segmentation.network import build_segmenter
from layer_platform.segmentation.splits import validation_subjects
from layer_platform.segmentation.training import train_segmenter


def slab_example(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((16, 32, 8), np.uint8)
    edges = [0, *np.sort(rng.choice(np.arange(3, 30), 5, replace=False)), 32]
    for index in range(6):
        labels[:, edges[index] : edges[index + 1]] = index + 1
    image = (labels / 6.0 + rng.normal(0, 0.05, labels.shape)).astype(np.float32)
    return image, labels


def test_training_reduces_the_loss_and_reports_dice() -> None:
    rng = np.random.default_rng(0)
    train = [slab_example(rng) for _ in range(4)]
    val = [slab_example(rng)]
    trained = train_segmenter(train, val, SegmenterConfig(epochs=4, device="cpu"))
    losses = [report.train_loss for report in trained.history]
    assert losses[-1] < losses[0]
    assert set(trained.val_dice) and all(0 <= v <= 1 for v in trained.val_dice.values())


def test_a_diverging_mixed_precision_run_is_trained_again_in_float32(monkeypatch) -> None:
    class DivergesOnce(DiceCELoss):
        calls = 0

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            DivergesOnce.calls += 1
            self.diverges = DivergesOnce.calls == 1

        def forward(self, logits, target):
            loss = super().forward(logits, target)
            return loss * float("nan") if self.diverges else loss

    monkeypatch.setattr(training, "DiceCELoss", DivergesOnce)
    monkeypatch.setattr(
        training, "training_precision", lambda device, mixed: Precision(device, torch.bfloat16)
    )
    rng = np.random.default_rng(0)
    train = [slab_example(rng) for _ in range(2)]
    trained = train_segmenter(train, [slab_example(rng)], SegmenterConfig(epochs=2, device="cpu"))
    assert trained.precision == "float32"
    assert [report.epoch for report in trained.history] == [0, 1]
    assert all(np.isfinite(report.train_loss) for report in trained.history)


def test_segment_volume_shapes_and_sliding_window() -> None:
    torch.manual_seed(0)
    model = build_segmenter(SegmenterConfig())
    image = np.random.default_rng(1).random((16, 40, 16), dtype=np.float32)
    whole = segment_volume(model, image, torch.device("cpu"))
    windowed = segment_volume(model, image, torch.device("cpu"), roi_size=(16, 24, 8))
    assert whole.shape == windowed.shape == image.shape
    assert whole.dtype == np.uint8 and int(whole.max()) <= 6


def test_validation_subjects_hold_out_whole_subjects() -> None:
    subjects = [f"P{i // 2}" for i in range(20)]
    held = validation_subjects(subjects, 0.25, seed=3)
    assert len(held) == 3 and held <= set(subjects)
    assert held == validation_subjects(subjects, 0.25, seed=3)
    with pytest.raises(ValueError, match="at least 2 subjects"):
        validation_subjects(["P1", "P1"], 0.25, seed=0)
