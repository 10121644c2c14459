"""Train the six-layer segmenter with Dice + cross-entropy on annotated scans."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from monai.losses import DiceCELoss
from torch import nn
from tqdm import tqdm

from layer_platform.compute import (
    Precision,
    require_finite_weights,
    require_repeatable_gradients,
    resident,
    seed_everything,
    select_device,
    train_with_fallback,
    training_precision,
)
from layer_platform.labels import Layer
from layer_platform.segmentation.config import SegmenterConfig
from layer_platform.segmentation.inference import segment_volume
from layer_platform.segmentation.network import build_segmenter
from layer_platform.segmentation.qc import dice_per_layer

#: One annotated scan: B-mode (lateral, depth, sweep) float32 and its uint8 label map.
Example = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    train_loss: float
    val_dice: dict[Layer, float]
    seconds: float

    @property
    def mean_dice(self) -> float:
        return float(np.nanmean(list(self.val_dice.values())))

    def to_metrics(self) -> dict[str, float]:
        metrics = {"train_loss": self.train_loss, "val_mean_dice": self.mean_dice}
        metrics.update({f"val_dice_{layer.key}": v for layer, v in self.val_dice.items()})
        return metrics


@dataclass(frozen=True)
class TrainedSegmenter:
    """The trained network, its epochs, and the arithmetic it trained in (``float32`` after a
    mixed-precision run diverged)."""

    model: nn.Module
    device: torch.device
    history: tuple[EpochReport, ...]
    precision: str = "float32"

    @property
    def val_dice(self) -> dict[Layer, float]:
        return self.history[-1].val_dice


def augment_pair(
    batch: torch.Tensor, labels: torch.Tensor, config: SegmenterConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip along lateral/sweep (never depth) and jitter gain; labels follow the flips."""
    for axis, enabled in ((2, config.flip_lateral), (4, config.flip_sweep)):
        if enabled and torch.rand(1, generator=generator).item() < 0.5:
            batch, labels = batch.flip(axis), labels.flip(axis)
    gain = 1 + 0.1 * (2 * torch.rand(batch.shape[0], 1, 1, 1, 1, generator=generator) - 1)
    return batch * gain.to(batch.device), labels


def validation_dice(
    model: nn.Module, examples: Sequence[Example], device: torch.device
) -> dict[Layer, float]:
    """Mean per-layer Dice over validation scans (each scan's Dice, then the mean)."""
    per_scan = [
        dice_per_layer(segment_volume(model, image, device), ref) for image, ref in examples
    ]
    return {layer: float(np.nanmean([d[layer] for d in per_scan])) for layer in per_scan[0]}


def train_segmenter(
    train: Sequence[Example],
    val: Sequence[Example],
    config: SegmenterConfig,
    on_epoch_end: Callable[[EpochReport], None] | None = None,
    progress: bool = False,
) -> TrainedSegmenter:
    """Whole-volume training; validation Dice after every epoch, the last epoch's model kept.

    A mixed-precision run whose loss turns non-finite is trained again from the start in
    float32 (``compute.train_with_fallback``).
    """
    if not train or not val:
        raise ValueError("need at least one annotated training and one validation scan")
    precision = training_precision(select_device(config.device), config.amp)
    return train_with_fallback(
        partial(_train, train, val, config, on_epoch_end, progress), precision
    )


def _train(
    train: Sequence[Example],
    val: Sequence[Example],
    config: SegmenterConfig,
    on_epoch_end: Callable[[EpochReport], None] | None,
    progress: bool,
    precision: Precision,
) -> TrainedSegmenter:
    seed_everything(config.seed)
    device = precision.device
    generator = torch.Generator().manual_seed(config.seed)
    model = precision.model(build_segmenter(config))
    scaler = precision.grad_scaler()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=True)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs)
    images = torch.from_numpy(np.stack([img for img, _ in train])[:, None]).float()
    labels = torch.from_numpy(np.stack([lab for _, lab in train])[:, None].astype(np.int64))
    images, labels = resident(device, images, labels)
    require_repeatable_gradients(model, precision, images[:2], "segmenter training")
    history = []
    for epoch in tqdm(range(config.epochs), desc="segmenter", unit="epoch", disable=not progress):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(images), generator=generator)
        losses = []
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            x, y = augment_pair(images[index], labels[index], config, generator)
            optimiser.zero_grad(set_to_none=True)
            with precision.autocast():
                logits = model(precision.batch(x))
            loss = loss_fn(logits.float(), y.to(device))
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"segmenter training in {precision.name} diverged at epoch {epoch}"
                )
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            losses.append(float(loss.detach()))
        schedule.step()
        require_finite_weights(model, f"segmenter training in {precision.name} at epoch {epoch}")
        report = EpochReport(
            epoch,
            float(np.mean(losses)),
            validation_dice(model, val, device),
            time.perf_counter() - started,
        )
        history.append(report)
        if on_epoch_end is not None:
            on_epoch_end(report)
    return TrainedSegmenter(model.eval(), device, tuple(history), precision.name)
