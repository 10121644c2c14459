"""Device selection and seeding shared by every model: CPU first, CUDA when present."""

from __future__ import annotations

import os
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


#: cuBLAS needs a fixed workspace for deterministic GEMMs (set before the first CUDA matmul).
CUBLAS_WORKSPACE = ":4096:8"


def member_seed(base: int, member: int) -> int:
    """Ensemble member ``member``'s own seed, derived from the base seed (no two members share
    an initialisation or a shuffle, and each repeats from the base seed alone)."""
    return int(np.random.SeedSequence([base, member]).generate_state(1)[0])


def deterministic_on(device: torch.device) -> None:
    """On CUDA, refuse nondeterministic kernels so a seeded run repeats exactly there too.

    ``torch.use_deterministic_algorithms`` raises on an op without a deterministic kernel
    rather than silently varying; cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` (set here unless
    the environment already fixes it). Nothing changes on the CPU, which is deterministic.
    """
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)
