"""The training loader: a seeded order, and the training set kept on a GPU where it fits."""

from __future__ import annotations

import pytest
import torch

from layer_platform import compute
from layer_platform.classification.config import ClassifierConfig
from layer_platform.classification.training import training_loader
from layer_platform.compute import resident

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _set(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 1, 2, 3, 2).clone()
    return x, (torch.arange(n) % 2).float()


def _order(device: torch.device, n: int = 17) -> list[int]:
    x, y = _set(n)
    loader = training_loader(x, y, ClassifierConfig(batch_size=8, seed=3), device)
    return [int(v) for xb, _ in loader for v in xb[:, 0, 0, 0, 0].cpu()]


def test_the_order_repeats_from_the_seed_and_a_lone_last_sample_is_dropped() -> None:
    order = _order(torch.device("cpu"))
    assert order == _order(torch.device("cpu"))
    assert len(order) == 16 and len(set(order)) == 16  # 17 = 2 x 8 + 1: the one left over
    assert order != sorted(order)


def test_on_a_cpu_the_tensors_stay_where_they_are() -> None:
    x, y = _set(4)
    kept = resident(torch.device("cpu"), x, y)
    assert kept[0] is x and kept[1] is y


@CUDA
def test_on_a_gpu_the_set_moves_once_and_the_order_is_the_cpus() -> None:
    device = torch.device("cuda")
    x, y = _set(4)
    moved = resident(device, x, y)
    assert all(t.device.type == "cuda" for t in moved)
    assert torch.equal(moved[0].cpu(), x)
    assert _order(device) == _order(torch.device("cpu"))


@CUDA
def test_a_set_too_large_for_the_gpu_stays_in_host_memory(monkeypatch) -> None:
    monkeypatch.setattr(compute, "RESIDENT_SHARE", 0.0)
    x, y = _set(4)
    kept = resident(torch.device("cuda"), x, y)
    assert kept[0] is x and kept[1] is y
