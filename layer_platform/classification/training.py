"""Train one classifier with early stopping on validation AUC, and predict MP probabilities."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from layer_platform.classification.augmentation import augment_batch
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.data import Item
from layer_platform.classification.inference import inference_network
from layer_platform.classification.metrics import auc
from layer_platform.classification.network import build_classifier, check_input_shape
from layer_platform.compute import (
    Precision,
    deterministic_on,
    require_finite_weights,
    require_repeatable_gradients,
    resident,
    seed_everything,
    select_device,
    train_with_fallback,
    training_precision,
)

_PREDICT_BATCH = 16


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did; passed to ``on_epoch_end`` so the caller can log it."""

    epoch: int
    train_loss: float
    val_loss: float
    val_auc: float
    improved: bool
    seconds: float
    #: The learning rate at the end of the epoch (what the schedule reached).
    lr: float = math.nan

    def to_metrics(self) -> dict[str, float]:
        """The epoch's figures, leaving out the undefined ones (NaN: no validation set)."""
        metrics = {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_auc": self.val_auc,
            "epoch_seconds": self.seconds,
            "lr": self.lr,
        }
        return {name: value for name, value in metrics.items() if not math.isnan(value)}


@dataclass(frozen=True, eq=False)
class TrainedClassifier:
    """The best-epoch model (on ``device``) and how training went; ``precision`` names the
    arithmetic it trained in (``float32`` after a mixed-precision run diverged)."""

    model: nn.Module
    device: torch.device
    in_channels: int
    best_epoch: int
    best_val_auc: float
    history: tuple[EpochReport, ...]
    precision: str = "float32"


def stack_items(items: Sequence[Item]) -> tuple[Tensor, Tensor]:
    """(N, C, L, D, S) float32 inputs and (N,) float labels; all items must share one shape."""
    if not items:
        raise ValueError("no items")
    shapes = {item.x.shape for item in items}
    if len(shapes) > 1:
        raise ValueError(f"items must share one input shape (resample first); got {sorted(shapes)}")
    x = torch.from_numpy(np.stack([item.x for item in items]).astype(np.float32, copy=False))
    y = torch.tensor([item.y for item in items], dtype=torch.float32)
    return x, y


@torch.no_grad()
def _logits(model: nn.Module, x: Tensor, precision: Precision) -> Tensor:
    """``model``'s logits on ``x`` through its ``inference_network`` (batch norms folded,
    activations in place): the function attribution explains, and on the CPU grid 1.7x faster
    than the trained network on a fold's validation scans, which every epoch scores."""
    network = inference_network(model.eval())
    with precision.autocast():
        chunks = [
            network(precision.batch(x[i : i + _PREDICT_BATCH])).float().cpu()
            for i in range(0, len(x), _PREDICT_BATCH)
        ]
    return torch.cat(chunks).reshape(-1)


def predict_proba(model: nn.Module, items: Sequence[Item], device: torch.device) -> np.ndarray:
    """Probability of MP per item, in item order; float64 in [0, 1].

    Always in float32, whatever precision trained the model: reported predictions and the
    attributions that explain them see the same numbers.
    """
    x, _ = stack_items(items)
    proba = torch.sigmoid(_logits(model, x, Precision(device, None))).double().numpy()
    if not np.all(np.isfinite(proba)):
        raise FloatingPointError("the model produced non-finite outputs")
    return proba


def _require_both_classes(y: Tensor, what: str) -> None:
    n_pos = int(y.sum())
    if n_pos in (0, len(y)):
        raise ValueError(f"{what} set needs MP and control scans; got {n_pos} MP of {len(y)}")


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    scaler: torch.amp.GradScaler,
    augment: Callable[[Tensor], Tensor],
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> float:
    """One pass over ``loader`` in ``precision``; ``scaler`` (``precision.grad_scaler()``, kept
    across epochs) scales the loss for float16 and passes through otherwise; ``scheduler``, if
    any, steps after every batch."""
    model.train()
    total, seen = 0.0, 0
    for xb, yb in loader:
        xb = augment(precision.batch(xb))
        yb = yb.to(precision.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            logits = model(xb).reshape(-1)
        loss = loss_fn(logits.float(), yb)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * len(yb)
        seen += len(yb)
    return total / seen


def training_loader(
    x: Tensor, y: Tensor, config: ClassifierConfig, device: torch.device
) -> DataLoader:
    """Shuffled batches of ``(x, y)`` in a seeded order, drawn on the GPU when the set fits
    there (``compute.resident``), else from pinned host memory on CUDA."""
    x, y = resident(device, x, y)
    return DataLoader(
        TensorDataset(x, y),
        batch_size=config.batch_size,
        shuffle=True,
        # A lone last sample would make a batch-norm step from one scan's statistics.
        drop_last=len(y) % config.batch_size == 1,
        generator=torch.Generator().manual_seed(config.seed),
        pin_memory=device.type == "cuda" and x.device.type == "cpu",
    )


def train_classifier(
    train_items: Sequence[Item],
    val_items: Sequence[Item] | None,
    config: ClassifierConfig,
    on_epoch_end: Callable[[EpochReport], None] | None = None,
    precision: Precision | None = None,
) -> TrainedClassifier:
    """Train with class-balanced BCE and depth-preserving augmentation; keep the best epoch.

    "Best" is the highest validation AUC, ties broken by lower validation loss (tiny validation
    sets tie often); a one-class validation set is judged by its loss alone. The first
    ``min_epochs - 1`` epochs are warm-up, never kept: near-constant early outputs can rank a
    tiny validation set perfectly by numerical noise. After that, training stops after
    ``patience`` epochs without a new best. Without ``val_items`` (the refit on every
    development subject) it trains exactly ``config.max_epochs`` epochs and keeps the last.
    Seeded: the same inputs and config give the same model on a CPU. ``precision`` defaults to
    :func:`training_precision` of the device (``config.amp``); the training benchmark pins it.
    A mixed-precision run whose loss turns non-finite is trained again from the start in
    float32 (``TrainedClassifier.precision`` says which ran), so the fast path never costs a
    model.
    """
    precision = precision or training_precision(select_device(config.device), config.amp)
    return train_with_fallback(
        partial(_train, train_items, val_items, config, on_epoch_end), precision
    )


def _train(
    train_items: Sequence[Item],
    val_items: Sequence[Item] | None,
    config: ClassifierConfig,
    on_epoch_end: Callable[[EpochReport], None] | None,
    precision: Precision,
) -> TrainedClassifier:
    seed_everything(config.seed)
    device = precision.device
    deterministic_on(device)
    x_train, y_train = stack_items(train_items)
    check_input_shape(config, tuple(x_train.shape[2:]))
    _require_both_classes(y_train, "training")
    x_val, y_val = stack_items(val_items) if val_items is not None else (None, None)
    if x_val is not None and x_train.shape[1:] != x_val.shape[1:]:
        raise ValueError(
            f"train {tuple(x_train.shape[1:])} and val {tuple(x_val.shape[1:])} differ"
        )
    # A small fold of an SWE mode can hold one class only: its AUC is undefined, so such a
    # validation set early-stops on its loss alone (val_auc is reported as NaN).
    val_has_both = y_val is not None and 0 < int(y_val.sum()) < len(y_val)

    in_channels = int(x_train.shape[1])
    model = precision.model(build_classifier(config, in_channels))
    require_repeatable_gradients(model, precision, x_train[:2], f"training in {precision.name}")
    # pos_weight = n_control / n_MP: each class contributes equally to the loss.
    pos_weight = (len(y_train) - y_train.sum()) / y_train.sum()
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scaler = precision.grad_scaler()
    loader = training_loader(x_train, y_train, config, device)
    scheduler = (
        torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=config.max_epochs * len(loader)
        )
        if config.lr_schedule == "one_cycle"
        else None
    )
    rng = torch.Generator(device=device).manual_seed(config.seed)  # augmentation draws

    history: list[EpochReport] = []
    best_key = (-math.inf, -math.inf)
    best_state, best_epoch, stale = None, 0, 0
    for epoch in tqdm(range(1, config.max_epochs + 1), disable=not config.progress, desc="epochs"):
        start = time.perf_counter()
        train_loss = train_one_epoch(
            model,
            loader,
            loss_fn,
            optimizer,
            precision,
            scaler,
            lambda xb: augment_batch(xb, config, rng),
            scheduler,
        )
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"training in {precision.name} diverged at epoch {epoch}; try a lower lr"
            )
        require_finite_weights(model, f"training in {precision.name} at epoch {epoch}")

        val_loss = val_auc = math.nan
        if x_val is None:  # refit: every epoch is the latest, the last one is kept
            improved, best_epoch = True, epoch
        else:
            # Validation in float32: early stopping compares exact figures.
            val_logits = _logits(model, x_val, replace(precision, dtype=None))
            if not torch.isfinite(val_logits).all():
                raise FloatingPointError(
                    f"training in {precision.name} made the weights non-finite at epoch {epoch}"
                )
            val_loss = float(loss_fn(val_logits.to(device), y_val.to(device)))
            if val_has_both:
                val_auc = auc(y_val.numpy(), torch.sigmoid(val_logits).numpy())
            key = (val_auc if val_has_both else 0.0, -val_loss)
            improved = epoch >= config.min_epochs and key > best_key
            if improved:
                best_key, best_epoch, stale = key, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            elif epoch >= config.min_epochs:
                stale += 1
        report = EpochReport(
            epoch,
            train_loss,
            val_loss,
            val_auc,
            improved,
            time.perf_counter() - start,
            optimizer.param_groups[0]["lr"],
        )
        history.append(report)
        if on_epoch_end is not None:
            on_epoch_end(report)
        if stale >= config.patience:
            break

    if x_val is not None:
        model.load_state_dict(best_state)
    model.eval()
    best_val_auc = best_key[0] if val_has_both else math.nan
    return TrainedClassifier(
        model, device, in_channels, best_epoch, best_val_auc, tuple(history), precision.name
    )
