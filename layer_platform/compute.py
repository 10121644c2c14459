"""Device selection and seeding shared by every model: CPU first, CUDA when present."""

from __future__ import annotations

import random

import numpy as np
import torch

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def select_device(preference: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; asking for ``cuda`` without one is an error."""
    if preference not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}; got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a training run repeats exactly on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
