"""A tiny synthetic cohort: MP scans have a brighter (and stiffer) slab in a fixed depth band."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.data import Scan

TINY_SHAPE = (12, 24, 6)
SLAB = slice(8, 13)  # depth band, in voxels from the skin

#: Small and fast: a few epochs on 12 subjects take well under a second per model on a CPU.
TINY_CONFIG = ClassifierConfig(
    channels=(4, 8, 16),
    min_epochs=3,
    max_epochs=8,
    patience=3,
    lr=3e-3,
    batch_size=4,
    n_bootstrap=200,
    device="cpu",
)


def synthetic_scans(
    n_subjects: int = 12,
    scans_per_subject: int = 2,
    shape: tuple[int, int, int] = TINY_SHAPE,
    seed: int = 0,
) -> list[Scan]:
    """Half the subjects MP, half control; every scan has SWE valid on ~80% of voxels."""
    rng = np.random.default_rng(seed)
    scans = []
    for s in range(n_subjects):
        label = "MP" if s % 2 == 0 else "control"
        for side in range(scans_per_subject):
            bmode = rng.normal(0.4, 0.08, shape).astype(np.float32)
            swe = rng.uniform(8, 25, shape).astype(np.float32)
            if label == "MP":
                bmode[:, SLAB, :] += 0.35
                swe[:, SLAB, :] *= 3
            valid = rng.random(shape) < 0.8
            scans.append(
                Scan(
                    f"sub{s:02d}_side{side}",
                    f"sub{s:02d}",
                    label,
                    bmode,
                    np.where(valid, swe, 0),
                    valid,
                )
            )
    return scans


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from intra-op threads, and on a busy shared CPU two threads
    ran these trainings ~10x slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
