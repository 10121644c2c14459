"""Segmenter configuration: one frozen object, logged to MLflow with every training run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from layer_platform.compute import DEVICE_CHOICES


@dataclass(frozen=True)
class SegmenterConfig:
    """How the six-layer segmenter is built and trained.

    Args:
        channels / strides: MONAI UNet feature widths and down-sampling per level; the default
            halves every axis three times, so working shapes need each axis divisible by 8.
        epochs: full passes over the annotated training scans (whole volumes, no patches: the
            CPU working grid is small enough, and whole volumes keep the layer order in view).
        lr / batch_size / seed: AdamW learning rate, scans per step, seed for weights, order
            and augmentation.
        val_fraction: subjects held out for validation Dice (never trained on).
        flip_lateral / flip_sweep: augmentation along axes where anatomy is symmetric enough;
            depth is never flipped (skin must stay at depth 0).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        amp: train in mixed precision where the device multiplies it fast (bfloat16 on CPUs
            with bf16 units, float16 on CUDA: ``compute.training_precision``); segmentation
            and validation Dice run in float32.
    """

    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    epochs: int = 40
    lr: float = 3e-3
    batch_size: int = 4
    seed: int = 0
    val_fraction: float = 0.25
    flip_lateral: bool = True
    flip_sweep: bool = True
    device: str = "auto"
    amp: bool = True

    def __post_init__(self) -> None:
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError("strides needs one entry fewer than channels (one per down-step)")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1); got {self.val_fraction}")
        if self.device not in DEVICE_CHOICES:
            raise ValueError(f"device must be one of {DEVICE_CHOICES}; got {self.device!r}")

    def to_params(self) -> dict[str, str | int | float | bool]:
        return {k: str(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
